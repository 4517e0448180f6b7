package sqlite

// cachedQueries are the statements every claim and settle runs, kept prepared on the writer
// (db.SQLiteDB.WriteStmts). Parsing was a third of an ack's CPU with this driver (SQLite compiled to
// WebAssembly): prepared once, a statement is only bound and stepped in each transaction.
var cachedQueries = []string{subscriptionGet, deliveriesDue, deliveryGet, deliveriesByID, deliveryUpdate, attemptInsert, eventsSettle, eventsByID}
