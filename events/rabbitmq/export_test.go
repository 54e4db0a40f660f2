package rabbitmq

// Sessions reports how many connections the Source has made, so tests can
// wait for a reconnection.
func Sessions(s *Source) uint64 { return s.sessions.Load() }
