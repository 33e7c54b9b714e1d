package envoy

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// A W3C WebDriver client, just what TestBrowser needs, speaking to Debian's chromedriver
// driving Debian's headless chromium: no Go dependency, no Node.

// browserBinaries returns chromium and chromedriver from PATH (CHROMIUM_BIN and
// CHROMEDRIVER_BIN override). Without them the test is skipped, except under CI, where it
// fails: .ci/run installs both.
func browserBinaries(t *testing.T) (chromium, driver string) {
	t.Helper()
	find := func(env string, names ...string) string {
		if p := os.Getenv(env); p != "" {
			return p
		}
		for _, n := range names {
			if p, err := exec.LookPath(n); err == nil {
				return p
			}
		}
		return ""
	}
	chromium = find("CHROMIUM_BIN", "chromium", "chromium-browser")
	driver = find("CHROMEDRIVER_BIN", "chromedriver")
	if chromium == "" || driver == "" {
		const msg = "no chromium and chromedriver on PATH (Debian: apt-get install chromium chromium-driver; .ci/run does)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return chromium, driver
}

// browser is one WebDriver session.
type browser struct {
	t       *testing.T
	session string // http://127.0.0.1:port/session/id
}

// startBrowser runs chromedriver on a free port and opens a headless chromium session with
// a fresh profile; both stop when the test ends.
func startBrowser(t *testing.T) *browser {
	t.Helper()
	chromium, driverBin := browserBinaries(t)
	port := freePorts(t).Listener
	driver := start(t, "chromedriver", driverBin, "--port="+strconv.Itoa(port), "--allowed-ips=127.0.0.1")
	base := "http://" + local(port)
	driver.WaitFor(t, "GET /status", httpOK(base+"/status", `"ready":true`))
	b := &browser{t: t}
	var created struct {
		SessionID string `json:"sessionId"`
	}
	args := []string{"--headless=new", "--disable-gpu", "--window-size=1100,1250", "--no-first-run",
		"--user-data-dir=" + filepath.Join(t.TempDir(), "profile")}
	if os.Geteuid() == 0 {
		args = append(args, "--no-sandbox") // chromium refuses to run its sandbox as root
	}
	b.call("POST", base+"/session", map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName":        "chrome",
		"goog:chromeOptions": map[string]any{"binary": chromium, "args": args},
	}}}, &created)
	if created.SessionID == "" {
		t.Fatal("webdriver: no session id")
	}
	b.session = base + "/session/" + created.SessionID
	t.Cleanup(func() { b.call("DELETE", b.session, nil, nil) })
	return b
}

// call sends one WebDriver command and decodes its "value" into out (nil: ignore it).
func (b *browser) call(method, url string, body, out any) {
	b.t.Helper()
	var in io.Reader
	if body != nil {
		j, _ := json.Marshal(body)
		in = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, url, in)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		b.t.Fatalf("webdriver %s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var env struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(raw, &env); err != nil || resp.StatusCode != 200 {
		b.t.Fatalf("webdriver %s %s = %d %s", method, url, resp.StatusCode, clip(raw))
	}
	if out != nil {
		if err := json.Unmarshal(env.Value, out); err != nil {
			b.t.Fatalf("webdriver %s %s: value %s: %v", method, url, clip(env.Value), err)
		}
	}
}

// open navigates to url and waits for the page to load.
func (b *browser) open(url string) { b.call("POST", b.session+"/url", map[string]any{"url": url}, nil) }

// js runs script in the page (arguments: args) and returns its result.
func (b *browser) js(script string, args ...any) any {
	if args == nil {
		args = []any{}
	}
	var v any
	b.call("POST", b.session+"/execute/sync", map[string]any{"script": script, "args": args}, &v)
	return v
}

// jsAsync runs script, which calls its last argument with the result.
func (b *browser) jsAsync(script string) any {
	var v any
	b.call("POST", b.session+"/execute/async", map[string]any{"script": script, "args": []any{}}, &v)
	return v
}

// click clicks the element that css selects, as a user would (WebDriver element click).
func (b *browser) click(css string) {
	b.t.Helper()
	var el map[string]string
	b.call("POST", b.session+"/element", map[string]any{"using": "css selector", "value": css}, &el)
	for _, id := range el { // the one key is the W3C element identifier
		b.call("POST", b.session+"/element/"+id+"/click", map[string]any{}, nil)
		return
	}
	b.t.Fatalf("webdriver: no element %s", css)
}

// text is the visible text of the element that css selects ("" when there is none).
func (b *browser) text(css string) string {
	v, _ := b.js(`const e = document.querySelector(arguments[0]); return e ? e.innerText : "";`, css).(string)
	return v
}

// waitJS waits until script returns want.
func (b *browser) waitJS(script string, want any) {
	b.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := b.js(script)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s = %v, waited for %v", script, got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitText waits until the element's text contains want and returns the text.
func (b *browser) waitText(css, want string) string {
	b.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := b.text(css)
		if bytes.Contains([]byte(got), []byte(want)) {
			return got
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s: text %q, waited for %q", css, clip([]byte(got)), want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// screenshot saves the viewport as a PNG file.
func (b *browser) screenshot(file string) {
	b.t.Helper()
	var b64 string
	b.call("GET", b.session+"/screenshot", nil, &b64)
	png, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(file, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %s (%d bytes)", file, len(png))
}
