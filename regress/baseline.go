package regress

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Baseline is the committed reference the check judges a run against.
type Baseline struct {
	// Ratio is the median server/bare throughput ratio of a clean run.
	Ratio float64 `json:"ratio"`
	// Tolerance is the fraction the ratio may fall below Ratio before the
	// check fails.
	Tolerance float64 `json:"tolerance"`
	// MeasuredOn names the machine, commit and time of the run.
	MeasuredOn string `json:"measured_on"`
	// Command is the command line that wrote the file.
	Command string `json:"command"`
	// Setup is the measurement's shape (Config.setup).
	Setup string `json:"setup,omitempty"`
	// Rounds are the per-round ratios the median came from.
	Rounds []float64 `json:"rounds,omitempty"`
}

func (b *Baseline) validate() error {
	switch {
	case !(b.Ratio > 0) || b.Ratio > 10:
		return fmt.Errorf("ratio %v: want a positive ratio of throughputs", b.Ratio)
	case !(b.Tolerance >= 0) || b.Tolerance >= 1:
		return fmt.Errorf("tolerance %v: want a fraction in [0, 1)", b.Tolerance)
	}
	return nil
}

// ReadBaseline reads a baseline file strictly: unknown fields, trailing
// data and out-of-range values are errors naming the file.
func ReadBaseline(path string) (*Baseline, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("baseline %s does not exist", path)
		}
		return nil, fmt.Errorf("read baseline: %w", err)
	}
	b, err := parseBaseline(data)
	if err != nil {
		return nil, fmt.Errorf("baseline %s: %w", path, err)
	}
	return b, nil
}

func parseBaseline(data []byte) (*Baseline, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var b Baseline
	if err := dec.Decode(&b); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after the JSON object")
	}
	if err := b.validate(); err != nil {
		return nil, err
	}
	return &b, nil
}

// WriteBaseline writes b to path.
func WriteBaseline(path string, b *Baseline) error {
	if err := b.validate(); err != nil {
		return err
	}
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write baseline: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write baseline: %w", err)
	}
	return nil
}

// verdict is the outcome of judging a run's ratio.
type verdict struct {
	pass  bool
	floor float64 // the lowest passing ratio
	line  string
}

// judge passes ratio when it is at least b.Ratio × (1 − b.Tolerance). A
// faster server always passes: the check guards against regressions, and a
// lasting improvement is recorded with --update-baseline.
func judge(ratio float64, b *Baseline) verdict {
	floor := b.Ratio * (1 - b.Tolerance)
	// A ratio exactly at the floor passes, whatever the rounding of the
	// product (0.8 × 0.9 is 0.7200000000000001).
	v := verdict{pass: ratio >= floor-1e-9, floor: floor}
	if v.pass {
		v.line = fmt.Sprintf("pass: ratio %.3f >= baseline %.3f × (1 − %.2f) = %.3f", ratio, b.Ratio, b.Tolerance, floor)
	} else {
		v.line = fmt.Sprintf("throughput regression: ratio %.3f < baseline %.3f × (1 − %.2f) = %.3f", ratio, b.Ratio, b.Tolerance, floor)
	}
	return v
}
