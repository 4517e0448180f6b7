package sergasctl

import (
	auditstore "github.com/sergas/core/services/audit/store"
	auditpg "github.com/sergas/core/services/audit/store/postgres"
	auditsqlite "github.com/sergas/core/services/audit/store/sqlite"
	tokenstore "github.com/sergas/core/services/token/store"
	tokenpg "github.com/sergas/core/services/token/store/postgres"
	tokensqlite "github.com/sergas/core/services/token/store/sqlite"
	webhookstore "github.com/sergas/core/services/webhook/store"
	webhookpg "github.com/sergas/core/services/webhook/store/postgres"
	webhooksqlite "github.com/sergas/core/services/webhook/store/sqlite"
)

// The services' own stores over sergasctl's connection, so that every figure is read by the code the
// services run. The connection owns the database: never Close these.

func tokenStore(cn *conn) tokenstore.Store {
	if cn.SQLite != nil {
		return tokensqlite.New(cn.SQLite)
	}
	return tokenpg.New(cn.PG)
}

func auditStore(cn *conn) auditstore.Store {
	if cn.SQLite != nil {
		return auditsqlite.New(cn.SQLite)
	}
	return auditpg.New(cn.PG)
}

func webhookStore(cn *conn) webhookstore.Store {
	if cn.SQLite != nil {
		return webhooksqlite.New(cn.SQLite)
	}
	return webhookpg.New(cn.PG)
}
