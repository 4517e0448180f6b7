// Package processtest holds the audit service's tests across operating-system processes: sergas-audit is
// built into a temporary directory and run as separate processes (replicas on one PostgreSQL schema; a
// process killed with SIGKILL mid-append and restarted), and the stored chain is checked from the
// database afterwards. It has no code of its own.
package processtest
