package http

import "github.com/uneventful/uneventful"

// acquire takes a slot for a command waiting on the bus, or reports that
// none is free.
func (s *Server) acquire() bool {
	select {
	case s.inFlight <- struct{}{}:
		return true
	default:
		return false
	}
}

// release gives back a slot taken by acquire.
func (s *Server) release() { <-s.inFlight }

// overloaded is the answer when every slot is taken: nothing was sent.
func (s *Server) overloaded() error {
	return uneventful.Errorf(uneventful.ErrUnavailable, "overloaded",
		"this server is already waiting on %d commands; nothing was applied, retry shortly", s.MaxInFlight)
}
