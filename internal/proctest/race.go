//go:build race

package proctest

// raceEnabled: the tests run with -race, so the commands they run are built with it too, and a race
// the command reports fails the test.
const raceEnabled = true
