package token

// Test hooks: completed rounds of the background workers, so that tests wait for a round rather than
// for a time.

func (s *Server) OutboxRounds() uint64    { return s.outboxRounds.Load() }
func (s *Server) RefresherRounds() uint64 { return s.refresherRounds.Load() }
