package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/uneventful/uneventful"
)

// TestWebPage drives the web page of a real `uneventful serve` in headless
// Chromium: it creates a wallet, credits it, sees a failing debit's reason
// in words, and sees a command sent by another client (plain HTTP) arrive
// on the live feed and update the open wallet without a reload.
//
// It saves a screenshot to docs/screenshot.png when UNEVENTFUL_SCREENSHOT
// is set, else to a temporary directory.
func TestWebPage(t *testing.T) {
	s := startServe(t, t.TempDir())
	b := newBrowser(t) // closed before serve stops
	do, waitFor, text := b.do, b.waitFor, b.text
	b.serve = s

	do("open the page", chromedp.Navigate(s.url+"/"), chromedp.WaitVisible(chromedp.CSS("#new-wallet")))
	waitFor("the live feed connects", `document.querySelector("#live").classList.contains("on")`)

	// Create a wallet.
	do("new wallet", chromedp.Click(chromedp.CSS("#new-wallet")), chromedp.WaitVisible(chromedp.CSS("#wallet")))
	waitFor("the wallet id is shown", `document.querySelector("#shown-id").textContent.length === 27`)
	w := text("#shown-id")
	if err := uneventful.ValidID(w); err != nil {
		t.Fatalf("the new wallet's id: %v", err)
	}
	waitFor("the new wallet's balance", `document.querySelector("#balance").textContent === "0"`)

	// Credit it.
	do("credit 12.50",
		chromedp.SendKeys(chromedp.CSS("#credit-form input[name=amount]"), "12.50"),
		chromedp.Click(chromedp.CSS("#credit-form button")))
	waitFor("the balance after the credit", `document.querySelector("#balance").textContent === "12.5"`)
	waitFor("the credit in the transactions", `document.querySelectorAll("#transactions tbody tr").length === 1`)

	// A debit the balance does not cover: its error in words on the page,
	// and the rejected attempt with its reason in the event log.
	do("debit 100",
		chromedp.SendKeys(chromedp.CSS("#debit-form input[name=amount]"), "100"),
		chromedp.Click(chromedp.CSS("#debit-form button")))
	const refusal = "insufficient funds: the balance is 12.5 and the debit is 100"
	waitFor("the debit's error", `document.querySelector("#command-result.bad")?.textContent.includes(`+jsString(refusal)+`)`)
	waitFor("the rejected attempt in the event log",
		`[...document.querySelectorAll("#events tbody tr")].some(r => r.textContent.includes("rejected") && r.textContent.includes("insufficient_funds"))`)
	if got := text("#balance"); got != "12.5" {
		t.Fatalf("balance after the refused debit: %q, want 12.5", got)
	}
	// A bad amount: the API's words again.
	do("credit 0.001",
		chromedp.SendKeys(chromedp.CSS("#credit-form input[name=amount]"), "0.001"),
		chromedp.Click(chromedp.CSS("#credit-form button")))
	waitFor("the bad amount's error", `document.querySelector("#command-result.bad")?.textContent.includes("decimal")`)
	do("clear the amount", chromedp.Evaluate[chromedp.Void](`document.querySelector("#credit-form input[name=amount]").value = ""`))

	// Another client changes the open wallet and another one: both arrive
	// on the live feed, and the open wallet updates without a reload.
	do("mark the page", chromedp.Evaluate[chromedp.Void](`window.notReloaded = true`))
	r := s.do("POST", "/wallet/"+w+"/credit", `{"amount": 7.5}`)
	want(t, r, 200, map[string]string{"balance": "20"})
	ownEvent := fmt.Sprint(r.body["event_id"])
	other := uneventful.NewID()
	r = s.do("POST", "/wallet/"+other+"/credit", `{"amount": 3}`)
	want(t, r, 200, nil)
	otherEvent := fmt.Sprint(r.body["event_id"])
	waitFor("the other client's event on the live feed", `document.querySelector('#feed tr[data-event-id="`+otherEvent+`"]') !== null`)
	waitFor("the open wallet's event on the live feed", `document.querySelector('#feed tr[data-event-id="`+ownEvent+`"]') !== null`)
	waitFor("the balance updated live", `document.querySelector("#balance").textContent === "20"`)
	waitFor("the transactions updated live", `document.querySelectorAll("#transactions tbody tr").length === 2`)
	waitFor("the state log updated live", `document.querySelectorAll("#states tbody tr").length === 2`)
	waitFor("the event log updated live", `document.querySelectorAll("#events tbody tr").length === 3`)
	if reloaded, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`window.notReloaded !== true`)); err != nil || reloaded {
		t.Fatalf("the page reloaded (err %v)", err)
	}
	if got := text("#feed tr[data-event-id=" + jsString(otherEvent) + "]"); !strings.Contains(got, other) || !strings.Contains(got, "wallet.credit") || !strings.Contains(got, "accepted") {
		t.Fatalf("the feed's row of the other client's event: %q", got)
	}

	// A little more life for the picture: a debit, and the other domain.
	want(t, s.do("POST", "/wallet/"+w+"/debit", `{"amount": 4.25}`), 200, nil)
	want(t, s.do("POST", "/inventory/"+uneventful.NewID()+"/add", `{"quantity": 40}`), 200, nil)
	waitFor("the debit updated live", `document.querySelector("#balance").textContent === "15.75"`)
	waitFor("the inventory event on the feed", `[...document.querySelectorAll("#feed tbody tr")].some(r => r.textContent.includes("inventory.add"))`)

	// The picture shows the page at rest, not mid-way through the
	// highlight of new rows.
	do("end the highlights", chromedp.Evaluate[chromedp.Void](`document.querySelectorAll(".fresh").forEach(e => e.classList.remove("fresh"))`))
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(t.TempDir(), "screenshot.png")
	if os.Getenv("UNEVENTFUL_SCREENSHOT") != "" {
		path = filepath.Join("..", "..", "docs", "screenshot.png")
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)

	b.checkConsole()
}

// TestWebPageAPIKey: on a server that needs API keys, the page asks for
// one, and with it the feed, the reads and the commands work.
func TestWebPageAPIKey(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(keys, []byte("ops read,write ops-key-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, t.TempDir(), "--api-keys-file", keys)
	b := newBrowser(t)
	b.serve = s

	b.do("open the page", chromedp.Navigate(s.url+"/"), chromedp.WaitVisible(chromedp.CSS("#key-form")))
	if got := b.text("#key-why"); !strings.Contains(got, "API key") {
		t.Fatalf("the page's request for a key: %q", got)
	}
	b.do("give the key",
		chromedp.SendKeys(chromedp.CSS("#key"), "ops-key-0123456789abcdef"),
		chromedp.Click(chromedp.CSS("#key-form button")))
	b.waitFor("the live feed connects with the key", `document.querySelector("#live").classList.contains("on")`)
	b.do("new wallet", chromedp.Click(chromedp.CSS("#new-wallet")), chromedp.WaitVisible(chromedp.CSS("#wallet")))
	b.do("credit 3",
		chromedp.SendKeys(chromedp.CSS("#credit-form input[name=amount]"), "3"),
		chromedp.Click(chromedp.CSS("#credit-form button")))
	b.waitFor("the balance after the credit", `document.querySelector("#balance").textContent === "3"`)
	b.waitFor("the credit in the event log", `document.querySelectorAll("#events tbody tr").length === 1`)
	b.waitFor("the credit on the live feed", `document.querySelectorAll("#feed tbody tr").length === 1`)
	b.checkConsole()
}

// browser is a headless Chromium for one test, bounded to 30s.
type browser struct {
	t     *testing.T
	ctx   context.Context
	serve *service // for failure messages

	mu       sync.Mutex
	problems []string
}

// newBrowser starts headless Chromium, or skips the test when it is not
// installed.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed; to run the browser test, install Debian's package: apt-get install -y chromium")
	}
	profile := t.TempDir() // removed after the browser has stopped
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	// The flags of a headless Chromium on a machine with a closed network,
	// run as root (hence no sandbox).
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1360, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(cancelBrowser)
	b := &browser{t: t, ctx: bctx}

	// Every console error, uncaught exception and refused load (a
	// Content-Security-Policy violation, say) fails the test; the network
	// log's lines about the 4xx answers the test asks for do not.
	console := chromedp.Console(bctx)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			if (m.Type == chromedp.ConsoleError && m.Source != "network") || m.IsException() {
				b.mu.Lock()
				b.problems = append(b.problems, m.String())
				b.mu.Unlock()
			}
		}
	}()
	return b
}

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		log := ""
		if b.serve != nil {
			log = b.serve.stderr.String()
		}
		b.t.Fatalf("%s: %v\npage text:\n%s\nserve log:\n%s", what, err, pageText(b.ctx), log)
	}
}

// waitFor polls a JavaScript predicate in the page.
func (b *browser) waitFor(what, predicate string) {
	b.t.Helper()
	b.do(what, chromedp.Poll[chromedp.Void](predicate, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(10*time.Second)))
}

// text is the text content of the first element sel matches.
func (b *browser) text(sel string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.TextContent(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(v)
}

// checkConsole fails the test if the page logged an error.
func (b *browser) checkConsole() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.problems) > 0 {
		b.t.Fatalf("the page logged errors:\n%s", strings.Join(b.problems, "\n"))
	}
}

// jsString quotes s for JavaScript (and for a CSS attribute value).
func jsString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// pageText is the page's visible text, for failure messages.
func pageText(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return s
}
