// Package proctest runs a service's real command as a separate operating-system process for tests that
// need one: a process killed with SIGKILL and restarted on the same database, or several replicas on one
// schema. The command is built once per test binary, started in production mode on a loopback port, and
// killed when the test ends if it still runs. Under -race the command is built with the race detector
// too, and a race it reports fails the test.
//
// A test package that uses it calls Main from its TestMain, so that the built commands are removed.
package proctest
