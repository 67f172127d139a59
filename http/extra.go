package http

import (
	"fmt"
	nethttp "net/http"
)

// Route is a route served beside the domains' routes, e.g. the web page's.
type Route struct {
	// Pattern is a net/http ServeMux pattern, e.g. "GET /{$}" or
	// "GET /events/stream".
	Pattern string
	// Handler serves the route.
	Handler nethttp.Handler
	// Scope is what an API key needs for the route when APIKeys are set.
	// Default ScopeRead.
	Scope Scope
	// Public routes need no API key even when APIKeys are set: only for
	// routes that hold no data, such as a page's static files.
	Public bool
}

// addRoutes registers Routes on mux. ServeMux panics on a conflicting
// pattern; routes turns that panic into an error.
func (s *Server) addRoutes(mux *nethttp.ServeMux) error {
	for i, rt := range s.Routes {
		if rt.Handler == nil {
			return fmt.Errorf("http: Server.Routes[%d] (%q) has no handler", i, rt.Pattern)
		}
		scope := rt.Scope
		if scope == "" {
			scope = ScopeRead
		}
		if scope != ScopeRead && scope != ScopeWrite {
			return fmt.Errorf("http: Server.Routes[%d] (%q): scope %q: want read or write", i, rt.Pattern, scope)
		}
		h := rt.Handler
		if !rt.Public {
			next := h
			h = nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
				if s.authorized(w, r, scope) {
					next.ServeHTTP(w, r)
				}
			})
		}
		mux.Handle(rt.Pattern, h)
	}
	return nil
}
