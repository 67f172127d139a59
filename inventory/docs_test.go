package inventory_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// quoteRE is a quote of code in docs/FRAMEWORK.md: a marker naming the
// file, then a Go block.
var quoteRE = regexp.MustCompile("(?s)<!-- quote: (\\S+) -->\n```go\n(.*?)\n```")

// TestFrameworkDocQuotesTheCode checks that every quote of code in the
// tutorial is still in the file it names, line for line (indentation
// aside), so that the tutorial cannot drift from the code.
func TestFrameworkDocQuotesTheCode(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "FRAMEWORK.md"))
	if err != nil {
		t.Fatal(err)
	}
	quotes := quoteRE.FindAllStringSubmatch(string(doc), -1)
	if len(quotes) < 10 {
		t.Fatalf("docs/FRAMEWORK.md has %d marked quotes of code, want at least 10", len(quotes))
	}
	for _, q := range quotes {
		src, err := os.ReadFile(filepath.Join("..", filepath.FromSlash(q[1])))
		if err != nil {
			t.Errorf("docs/FRAMEWORK.md quotes %s: %v", q[1], err)
			continue
		}
		if !containsLines(string(src), q[2]) {
			t.Errorf("docs/FRAMEWORK.md quotes code that %s no longer has; update the quote:\n%s", q[1], q[2])
		}
	}
}

// containsLines reports whether the lines of quote appear in src one after
// the other, each with its leading white space ignored.
func containsLines(src, quote string) bool {
	trim := func(s string) []string {
		lines := strings.Split(s, "\n")
		for i, l := range lines {
			lines[i] = strings.TrimLeft(l, " \t")
		}
		return lines
	}
	s, q := trim(src), trim(quote)
	for i := 0; i+len(q) <= len(s); i++ {
		match := true
		for j := range q {
			if s[i+j] != q[j] {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}
