package http

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	nethttp "net/http"
	"os"
	"strings"

	"github.com/uneventful/uneventful"
)

// Scope is what an API key may do: read (queries) or write (commands).
type Scope string

// The scopes of an API key.
const (
	ScopeRead  Scope = "read"
	ScopeWrite Scope = "write"
)

// APIKeys are the keys a server accepts. Only their SHA-256 digests are
// kept, compared in constant time; keys are never logged.
type APIKeys struct {
	keys []apiKey
}

type apiKey struct {
	name   string
	digest [sha256.Size]byte
	scopes map[Scope]bool
}

// LoadAPIKeys reads an API keys file: one key a line, as
// "<name> <scopes> <key>", scopes a comma-separated list of read and write;
// blank lines and lines starting with # are skipped. A key must be at least
// 16 characters.
func LoadAPIKeys(path string) (*APIKeys, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("api keys: %w", err)
	}
	defer f.Close()
	var ks APIKeys
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 3 {
			return nil, fmt.Errorf("api keys %s line %d: want <name> <scopes> <key>", path, n)
		}
		k := apiKey{name: fields[0], digest: sha256.Sum256([]byte(fields[2])), scopes: map[Scope]bool{}}
		for _, s := range strings.Split(fields[1], ",") {
			if Scope(s) != ScopeRead && Scope(s) != ScopeWrite {
				return nil, fmt.Errorf("api keys %s line %d: scope %q: want read, write or read,write", path, n, s)
			}
			k.scopes[Scope(s)] = true
		}
		if len(fields[2]) < 16 {
			return nil, fmt.Errorf("api keys %s line %d: key of %s is shorter than 16 characters", path, n, k.name)
		}
		ks.keys = append(ks.keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("api keys %s: %w", path, err)
	}
	if len(ks.keys) == 0 {
		return nil, fmt.Errorf("api keys %s: no key in the file", path)
	}
	return &ks, nil
}

// lookup returns the key matching presented, comparing against every key in
// constant time so that timing tells nothing about which matched.
func (ks *APIKeys) lookup(presented string) *apiKey {
	d := sha256.Sum256([]byte(presented))
	var found *apiKey
	for i := range ks.keys {
		if subtle.ConstantTimeCompare(d[:], ks.keys[i].digest[:]) == 1 {
			found = &ks.keys[i]
		}
	}
	return found
}

// authorized checks the request's API key for scope, answering 401 or 403
// itself when it fails. With no keys configured every request passes.
func (s *Server) authorized(w nethttp.ResponseWriter, r *nethttp.Request, scope Scope) bool {
	if s.APIKeys == nil {
		return true
	}
	presented := r.Header.Get("X-API-Key")
	if auth := r.Header.Get("Authorization"); presented == "" && strings.HasPrefix(auth, "Bearer ") {
		presented = strings.TrimPrefix(auth, "Bearer ")
	}
	if presented == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="uneventful"`)
		s.fail(w, r, unauthorized("missing_api_key", "this server needs an API key: send it as Authorization: Bearer <key> or X-API-Key"))
		return false
	}
	k := s.APIKeys.lookup(presented)
	if k == nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="uneventful", error="invalid_token"`)
		s.fail(w, r, unauthorized("invalid_api_key", "the API key is not valid"))
		return false
	}
	if !k.scopes[scope] {
		s.fail(w, r, uneventful.Errorf(errForbidden, "insufficient_scope", "the API key %q may not %s; it needs the %s scope", k.name, map[Scope]string{ScopeRead: "read", ScopeWrite: "send commands"}[scope], scope))
		return false
	}
	return true
}

func unauthorized(code, msg string) error { return uneventful.Errorf(errUnauthorized, code, "%s", msg) }
