package reports

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pageWidth is the browser window's width: a laptop's narrow browser
// window, less than the report's 980 px column plus margins would like.
const pageWidth = 1000

// checkScript runs in the page after it is laid out and writes what it
// found into the DOM, for --dump-dom to carry out: the page's width and
// scroll width, every element whose right edge passes the window (inside a
// box that scrolls, only what shows counts), the tables that must scroll
// to be read, and the page's height for the screenshot.
const checkScript = `<script>
(function () {
  var w = document.documentElement.clientWidth, bad = [], scrolled = [];
  function scroller(el) {
    for (var p = el.parentElement; p; p = p.parentElement) {
      var o = getComputedStyle(p).overflowX;
      if (o === 'auto' || o === 'scroll' || o === 'hidden') return p;
    }
    return null;
  }
  var all = document.body.getElementsByTagName('*');
  for (var i = 0; i < all.length; i++) {
    var el = all[i], r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    var box = scroller(el), right = box ? Math.min(r.right, box.getBoundingClientRect().right) : r.right;
    if (right > w + 1) bad.push(el.tagName.toLowerCase() + (el.className && el.className.baseVal === undefined ? '.' + el.className : '') + ' ends at ' + Math.round(r.right) + 'px');
  }
  document.querySelectorAll('.scroll').forEach(function (b) {
    if (b.scrollWidth > b.clientWidth + 1) {
      var h = b.parentElement.querySelector('h2');
      scrolled.push(h ? h.textContent : '?');
    }
  });
  var out = {width: w, scrollWidth: document.documentElement.scrollWidth, height: document.documentElement.scrollHeight,
    overflow: bad.slice(0, 20), scrolled: scrolled, charts: document.querySelectorAll('svg').length,
    title: (document.querySelector('h1') || {}).textContent || ''};
  var pre = document.createElement('pre');
  pre.id = 'scalelab-check';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>`

type pageCheck struct {
	Width       int      `json:"width"`
	ScrollWidth int      `json:"scrollWidth"`
	Height      int      `json:"height"`
	Overflow    []string `json:"overflow"`
	Scrolled    []string `json:"scrolled"`
	Charts      int      `json:"charts"`
	Title       string   `json:"title"`
}

// chromium finds Debian's chromium. Missing, the test fails as root (who
// can install it: make deps) and is skipped for anyone else.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Geteuid() == 0 {
		t.Fatal("chromium is not installed: apt-get install -y chromium (make deps installs it)")
	}
	t.Skip("chromium is not installed and this user cannot install it: apt-get install -y chromium to run this test")
	return ""
}

// runChromium runs headless chromium on file with extra flags, in its own
// process group, which it kills on timeout.
func runChromium(t *testing.T, bin, file string, flags ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir()}
	args = append(append(args, flags...), "file://"+file)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(flags, " "), err, stderr.String())
	}
	return stdout.Bytes()
}

// checkPage opens page in headless chromium with the check script added
// and returns what it found.
func checkPage(t *testing.T, bin string, page []byte) pageCheck {
	t.Helper()
	i := bytes.LastIndex(page, []byte("</body>"))
	if i < 0 {
		t.Fatal("page has no </body>")
	}
	withCheck := append(append(append([]byte{}, page[:i]...), checkScript...), page[i:]...)
	file := filepath.Join(t.TempDir(), "page.html")
	if err := os.WriteFile(file, withCheck, 0o644); err != nil {
		t.Fatal(err)
	}
	dom := runChromium(t, bin, file, "--dump-dom", fmt.Sprintf("--window-size=%d,900", pageWidth))
	m := regexp.MustCompile(`<pre id="scalelab-check">(.*?)</pre>`).FindSubmatch(dom)
	if m == nil {
		t.Fatalf("chromium's DOM has no verdict of the check script (did the page render?):\n%.2000s", dom)
	}
	var pc pageCheck
	if err := json.Unmarshal([]byte(html.UnescapeString(string(m[1]))), &pc); err != nil {
		t.Fatalf("check verdict %s: %v", m[1], err)
	}
	return pc
}

// TestPagesInChromium opens every published report, and the comparison of
// the published read-heavy runs, in headless chromium: each page renders
// (its title and charts are there) and nothing on it is wider than a
// 1000 px window, tables included. A screenshot of each published report
// is kept beside it as report.png (go test ./reports -update rewrites them).
func TestPagesInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("starts chromium once per page")
	}
	bin := chromium(t)
	type page struct {
		name, title, png string
		html             []byte
		minCharts        int
	}
	var pages []page
	dirs, _ := filepath.Glob("published/phase-*")
	var readHeavy []*Result
	for _, dir := range dirs {
		_, h, err := RenderPublished(dir)
		if err != nil {
			t.Fatal(err)
		}
		r := mustRead(t, dir)
		pages = append(pages, page{name: filepath.Base(dir), title: buildDocument(r, newOptions(nil)).title, html: h, minCharts: 5,
			png: filepath.Join(dir, "report.png")})
		if strings.HasSuffix(dir, "-read-heavy") {
			readHeavy = append(readHeavy, r)
		}
	}
	var cmpPage bytes.Buffer
	if err := RenderComparisonHTML(&cmpPage, Compare(readHeavy)); err != nil {
		t.Fatal(err)
	}
	pages = append(pages, page{name: "compare-read-heavy", title: "scalelab compare: " + strconv.Itoa(len(readHeavy)) + " runs", html: cmpPage.Bytes(), minCharts: 5})

	// The check sees what it must: a page wider than the window, and a
	// table that fits only by scrolling.
	t.Run("the check finds overflow", func(t *testing.T) {
		wide := []byte(`<!DOCTYPE html><html><body><h1>wide</h1><div style="width:3000px">x</div>` +
			`<section><h2>wide table</h2><div class="scroll" style="overflow-x:auto"><table><tr><td style="white-space:nowrap">` +
			strings.Repeat("wide ", 400) + `</td></tr></table></div></section></body></html>`)
		pc := checkPage(t, bin, wide)
		if pc.ScrollWidth <= pc.Width || len(pc.Overflow) == 0 || len(pc.Scrolled) != 1 {
			t.Errorf("check of an overflowing page = %+v, want it wider than the window, with overflow and one scrolled table", pc)
		}
	})
	for _, p := range pages {
		t.Run(p.name, func(t *testing.T) {
			pc := checkPage(t, bin, p.html)
			if pc.Title != p.title {
				t.Errorf("page title %q, want %q: the page did not render", pc.Title, p.title)
			}
			if pc.Charts < p.minCharts {
				t.Errorf("page shows %d charts, want at least %d", pc.Charts, p.minCharts)
			}
			if pc.ScrollWidth > pc.Width {
				t.Errorf("page is %d px wide in a %d px window", pc.ScrollWidth, pc.Width)
			}
			if len(pc.Overflow) > 0 {
				t.Errorf("elements pass the window's right edge: %v", pc.Overflow)
			}
			if len(pc.Scrolled) > 0 {
				t.Errorf("tables must scroll to be read: %v", pc.Scrolled)
			}
			if p.png == "" {
				return
			}
			if *update {
				file := filepath.Join(t.TempDir(), "page.html")
				if err := os.WriteFile(file, p.html, 0o644); err != nil {
					t.Fatal(err)
				}
				shot, err := filepath.Abs(p.png)
				if err != nil {
					t.Fatal(err)
				}
				runChromium(t, bin, file, "--screenshot="+shot, "--hide-scrollbars", fmt.Sprintf("--window-size=%d,%d", pageWidth, min(pc.Height, 9000)))
			}
			if fi, err := os.Stat(p.png); err != nil || fi.Size() == 0 {
				t.Errorf("no screenshot %s (go test ./reports -run TestPagesInChromium -update takes it): %v", p.png, err)
			}
		})
	}
}
