package reports

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// PublishedOptions returns the options that render the published run in
// dir, a folder named phase-N-SCENARIO among its siblings (as under
// reports/published/): the baseline is the previous phase's run of the
// same scenario, when there is one; the links go to the previous and next
// phase's run (of the same scenario, else of read-heavy), to the folder's
// README and to the project's README three levels up.
func PublishedOptions(dir string) ([]Option, error) {
	phase, scenario, ok := parsePublishedName(filepath.Base(dir))
	if !ok {
		return nil, fmt.Errorf("published options: %s is not named phase-N-SCENARIO", dir)
	}
	parent := filepath.Dir(dir)
	neighbour := func(p int) (string, string, bool) {
		for _, sc := range []string{scenario, "read-heavy"} {
			name := fmt.Sprintf("phase-%d-%s", p, sc)
			if _, err := os.Stat(filepath.Join(parent, name, ResultFile)); err == nil {
				return name, sc, true
			}
		}
		return "", "", false
	}
	var opts []Option
	var links []Link
	if name, sc, ok := neighbour(phase - 1); ok {
		href := "../" + name + "/" + HTMLFile
		if sc == scenario {
			b, err := Read(filepath.Join(parent, name))
			if err != nil {
				return nil, fmt.Errorf("published options: %w", err)
			}
			opts = append(opts, WithBaseline(b, href))
		} else {
			links = append(links, Link{Label: fmt.Sprintf("previous phase: %s on phase %d", sc, phase-1), Href: href})
		}
	}
	if name, sc, ok := neighbour(phase + 1); ok {
		links = append(links, Link{Label: fmt.Sprintf("next phase: %s on phase %d", sc, phase+1), Href: "../" + name + "/" + HTMLFile})
	}
	if _, err := os.Stat(filepath.Join(parent, "README.md")); err == nil {
		links = append(links, Link{Label: "all published runs", Href: "../README.md"})
	}
	opts = append(opts, WithLinks("../../../README.md", links...))
	return opts, nil
}

func parsePublishedName(name string) (phase int, scenario string, ok bool) {
	var rest string
	if _, err := fmt.Sscanf(name, "phase-%d-%s", &phase, &rest); err != nil {
		return 0, "", false
	}
	prefix := "phase-" + strconv.Itoa(phase) + "-"
	if len(name) <= len(prefix) {
		return 0, "", false
	}
	return phase, name[len(prefix):], true
}

// RenderPublished renders the run in dir (its result.json) into its
// report.md and report.html with PublishedOptions, and returns them.
func RenderPublished(dir string) (md, page []byte, err error) {
	r, err := Read(dir)
	if err != nil {
		return nil, nil, err
	}
	opts, err := PublishedOptions(dir)
	if err != nil {
		return nil, nil, err
	}
	var m, h bytes.Buffer
	if err := RenderMarkdown(&m, r, opts...); err != nil {
		return nil, nil, fmt.Errorf("render %s: %w", filepath.Join(dir, MarkdownFile), err)
	}
	if err := RenderHTML(&h, r, opts...); err != nil {
		return nil, nil, fmt.Errorf("render %s: %w", filepath.Join(dir, HTMLFile), err)
	}
	return m.Bytes(), h.Bytes(), nil
}
