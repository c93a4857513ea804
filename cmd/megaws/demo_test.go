package main_test

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// demoCases are the cases demo-e2e.mjs must run; a renamed or dropped case fails.
var demoCases = []string{
	"two tabs open the board",
	"a click in tab A appears in tab B",
	"a click in tab B appears in tab A",
	"a right-click erases in both tabs",
	"a drag in tab A paints a stroke seen by tab B",
	"tab B paints a shape seen by tab A",
	"a tab opened later gets the current board from the server",
	"the stats panel counts the open tabs",
	"screenshot",
}

// artifactDir is where browser tests leave screenshots: $MEGAWS_ARTIFACTS, or
// megaws-artifacts under the system temp directory.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("MEGAWS_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "megaws-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifact dir: %v", err)
	}
	return dir
}

// TestDemoBrowser runs `megaws serve --mode demo` and drives the page in two
// headless Chromium tabs (scripts/js/demo-e2e.mjs): a move in one appears in
// the other, a late tab gets the board from the server, the stats panel counts
// the tabs. The screenshot is kept as an artifact.
func TestDemoBrowser(t *testing.T) {
	requireTool(t, "node")
	requireTool(t, "node_modules")
	requireTool(t, "chromium")
	addr := startMegaws(t, "--mode", "demo", "--log-level", "warn")

	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("GET /: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !bytes.Contains(body, []byte(`id="board"`)) {
		t.Fatalf("GET /: status %d, Content-Type %q, %d bytes: want the demo page", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}

	png := filepath.Join(artifactDir(t), "demo.png")
	_ = os.Remove(png)
	rep := runJS(t, 3*time.Minute, "demo-e2e.mjs", "http://"+addr+"/", png, "--timeout", "150")
	requireAllPass(t, rep, demoCases...)
	b, err := os.ReadFile(png)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) || len(b) < 10<<10 {
		t.Fatalf("screenshot %s: %d bytes, not a plausible PNG", png, len(b))
	}
	t.Logf("screenshot: %s (%d KiB)", png, len(b)>>10)
}
