package scenarios

import (
	"bytes"
	"cmp"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// builtin holds the scenarios shipped with scalelab, so the binary runs them
// from any directory.
//
//go:embed *.yaml
var builtin embed.FS

// Defaults applied to absent fields before validation.
const (
	DefaultUsers      = 10000
	DefaultMaxWorkers = 256 // arrival-rate executors; constant-vus uses vus
	DefaultWeight     = 1
)

// Names lists the built-in scenarios.
func Names() []string {
	entries, err := fs.ReadDir(builtin, ".")
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".yaml"); ok {
			names = append(names, n)
		}
	}
	return names
}

// LoadNamed loads a built-in scenario by name ("read-heavy"), or a file when
// nameOrPath contains a slash or ends in .yaml or .yml.
func LoadNamed(nameOrPath string) (*Scenario, error) {
	if strings.ContainsRune(nameOrPath, '/') || strings.HasSuffix(nameOrPath, ".yaml") ||
		strings.HasSuffix(nameOrPath, ".yml") {
		return Load(nameOrPath)
	}
	data, err := builtin.ReadFile(nameOrPath + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("unknown scenario %q: not a built-in one (%s) and not a .yaml file", nameOrPath, strings.Join(Names(), ", "))
	}
	return Parse(path.Join("scenarios", nameOrPath+".yaml"), data)
}

// Load reads and validates the scenario file at path.
func Load(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load scenario: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates a scenario; file names it in errors. Unknown
// fields are errors; defaults are applied before validation. The errors are
// *FieldError values, joined when there are several, each naming the file,
// the line and the field: "x.yaml:12: mix[1].weight: must be >= 0".
func Parse(file string, data []byte) (*Scenario, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, syntaxError(file, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, &FieldError{File: file, Msg: "empty scenario file"}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, &FieldError{File: file, Line: root.Line, Msg: "want a mapping of scenario fields (name, executor, duration, …)"}
	}
	idx := newIndex(root)

	var raw rawScenario
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, syntaxError(file, err)
		}
		var errs []error
		for _, msg := range te.Errors {
			errs = append(errs, idx.decodeError(file, msg))
		}
		return nil, joinSorted(errs)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		line := extra.Line
		return nil, &FieldError{File: file, Line: line, Msg: "more than one YAML document: one scenario per file"}
	}

	s, issues := raw.scenario()
	s.Source = file
	issues = append(issues, idx.notIntegers()...)
	// One error per field: a value the conversion could not read, or a
	// missing parent, need not be reported again by validation.
	reported := func(field string) bool {
		for _, is := range issues {
			if field == is.field || strings.HasPrefix(field, is.field+".") ||
				strings.HasPrefix(field, is.field+"[") {
				return true
			}
		}
		return false
	}
	for _, is := range validate(s) {
		if !reported(is.field) {
			issues = append(issues, is)
		}
	}
	if len(issues) > 0 {
		errs := make([]error, len(issues))
		for i, is := range issues {
			errs[i] = &FieldError{File: file, Line: idx.line(is.field), Field: is.field, Msg: is.msg}
		}
		return nil, joinSorted(errs)
	}
	return s, nil
}

// FieldError is a problem in a scenario file.
type FieldError struct {
	File  string
	Line  int    // 0 when unknown
	Field string // e.g. "mix[1].weight"; "" for a syntax error
	Msg   string
}

func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	if e.Field != "" {
		b.WriteString(": " + e.Field)
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

// joinSorted joins FieldErrors in line order; one error is returned as is.
func joinSorted(errs []error) error {
	slices.SortStableFunc(errs, func(a, b error) int {
		var fa, fb *FieldError
		errors.As(a, &fa)
		errors.As(b, &fb)
		if fa == nil || fb == nil {
			return 0
		}
		return cmp.Compare(fa.Line, fb.Line)
	})
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}

func syntaxError(file string, err error) error {
	yamlLine := regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &FieldError{File: file, Line: line, Msg: m[2]}
	}
	return &FieldError{File: file, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
}

// The file's shape. Pointers tell absent fields (which get defaults) from
// zero ones (which are validated).
type rawScenario struct {
	Name        string       `yaml:"name"`
	Description string       `yaml:"description"`
	Executor    *rawExecutor `yaml:"executor"`
	Duration    *string      `yaml:"duration"`
	Warmup      *string      `yaml:"warmup"`
	Users       *int         `yaml:"users"`
	MaxWorkers  *int         `yaml:"max_workers"`
	Connections *int         `yaml:"connections"`
	Mix         []rawMix     `yaml:"mix"`
	Keys        *rawKeys     `yaml:"keys"`
	Thresholds  []string     `yaml:"thresholds"`
	Faults      []rawFault   `yaml:"faults"`
	// CheckConsistency: see Scenario.CheckConsistency.
	CheckConsistency bool `yaml:"check_consistency"`
}

type rawFault struct {
	At        *string `yaml:"at"`
	Component string  `yaml:"component"`
	Link      string  `yaml:"link"`
	Action    string  `yaml:"action"`
	For       *string `yaml:"for"`
	Latency   *string `yaml:"latency"`
	Rate      int     `yaml:"rate_kbps"`
	Direction string  `yaml:"direction"`
}

type rawExecutor struct {
	Type      string     `yaml:"type"`
	Rate      *float64   `yaml:"rate"`
	StartRate *float64   `yaml:"start_rate"`
	Stages    []rawStage `yaml:"stages"`
	VUs       *int       `yaml:"vus"`
}

type rawStage struct {
	Target   *float64 `yaml:"target"`
	Duration *string  `yaml:"duration"`
}

type rawMix struct {
	Op     string `yaml:"op"`
	Weight *int   `yaml:"weight"`
}

type rawKeys struct {
	Distribution  string   `yaml:"distribution"`
	Theta         *float64 `yaml:"theta"`
	Scrambled     *bool    `yaml:"scrambled"`
	HotKeys       *int     `yaml:"hot_keys"`
	HotFraction   *float64 `yaml:"hot_fraction"`
	HotOpFraction *float64 `yaml:"hot_op_fraction"`
}

// knownFields lists the fields of a raw type for "unknown field" errors.
func knownFields(typeName string) string {
	switch strings.TrimPrefix(typeName, "scenarios.") {
	case "rawScenario":
		return "name, description, executor, duration, warmup, users, max_workers, connections, mix, keys, thresholds, faults, check_consistency"
	case "rawFault":
		return "at, component, link, action, for, latency, rate_kbps, direction"
	case "rawExecutor":
		return "type, rate, start_rate, stages, vus"
	case "rawStage":
		return "target, duration"
	case "rawMix":
		return "op, weight"
	case "rawKeys":
		return "distribution, theta, scrambled, hot_keys, hot_fraction, hot_op_fraction"
	}
	return ""
}

// scenario applies the defaults and converts the raw fields, reporting
// absent required fields and values that do not parse.
func (r *rawScenario) scenario() (*Scenario, []issue) {
	var is []issue
	add := func(field, format string, args ...any) {
		is = append(is, issue{field, fmt.Sprintf(format, args...)})
	}
	dur := func(field string, s *string) time.Duration {
		d, err := time.ParseDuration(*s)
		if err != nil {
			add(field, "invalid duration %q (want a Go duration such as 30s or 1m30s)", *s)
		}
		return d
	}
	s := &Scenario{Name: r.Name, Description: strings.TrimSpace(r.Description), CheckConsistency: r.CheckConsistency}

	if r.Executor == nil {
		add("executor", "required (a mapping with type: %s)", kindList())
	} else {
		e := r.Executor
		s.Executor.Kind = ExecutorKind(e.Type)
		if e.Rate != nil {
			s.Executor.Rate = *e.Rate
		} else if s.Executor.Kind == ConstantArrivalRate {
			add("executor.rate", "required for %s (requests per second)", s.Executor.Kind)
		}
		if e.StartRate != nil {
			s.Executor.StartRate = *e.StartRate
		}
		for i, st := range e.Stages {
			var stage Stage
			field := fmt.Sprintf("executor.stages[%d]", i)
			if st.Target == nil {
				add(field+".target", "required (requests per second at the end of the stage)")
			} else {
				stage.Target = *st.Target
			}
			if st.Duration == nil {
				add(field+".duration", "required")
			} else {
				stage.Duration = dur(field+".duration", st.Duration)
			}
			s.Executor.Stages = append(s.Executor.Stages, stage)
		}
		if e.VUs != nil {
			s.Executor.VUs = *e.VUs
		} else if s.Executor.Kind == ConstantVUs {
			add("executor.vus", "required for %s", s.Executor.Kind)
		}
	}

	switch {
	case r.Duration != nil:
		s.Duration = dur("duration", r.Duration)
	case s.Executor.Kind == RampingArrivalRate:
		s.Duration = s.Executor.stagesDuration()
	default:
		add("duration", "required (a Go duration such as 30s)")
	}
	if r.Warmup != nil {
		s.Warmup = dur("warmup", r.Warmup)
	}

	s.Users = DefaultUsers
	if r.Users != nil {
		s.Users = *r.Users
	}
	s.MaxWorkers = DefaultMaxWorkers
	if s.Executor.Kind == ConstantVUs && s.Executor.VUs > 0 {
		s.MaxWorkers = s.Executor.VUs
	}
	if r.MaxWorkers != nil {
		s.MaxWorkers = *r.MaxWorkers
	}
	s.Connections = s.MaxWorkers
	if r.Connections != nil {
		s.Connections = *r.Connections
	}

	for _, m := range r.Mix {
		w := WeightedOp{Op: Op(m.Op), Weight: DefaultWeight}
		if m.Weight != nil {
			w.Weight = *m.Weight
		}
		s.Mix = append(s.Mix, w)
	}
	for i, m := range r.Mix {
		if m.Op == "" {
			add(fmt.Sprintf("mix[%d].op", i), "required (%s)", opList())
		}
	}

	s.Keys = r.Keys.keys()

	for i, text := range r.Thresholds {
		t, err := ParseThreshold(text)
		if err != nil {
			add(fmt.Sprintf("thresholds[%d]", i), "%v", err)
			// Keep the place so later thresholds keep their index.
		}
		s.Thresholds = append(s.Thresholds, t)
	}

	for i, f := range r.Faults {
		field := fmt.Sprintf("faults[%d]", i)
		fault := Fault{Component: f.Component, Link: f.Link, Action: FaultAction(f.Action), RateKBps: f.Rate, Direction: f.Direction}
		if f.At == nil {
			add(field+".at", "required (when, from the start of the measured run, e.g. 10s)")
		} else {
			fault.At = dur(field+".at", f.At)
		}
		if f.For != nil {
			fault.For = dur(field+".for", f.For)
		}
		if f.Latency != nil {
			fault.Latency = dur(field+".latency", f.Latency)
		}
		switch {
		case f.Component == "" && f.Link == "":
			add(field+".component", "required, or link (a component of the phase's topology, e.g. redis, replica-1, app-2; or a link, e.g. primary->replica-1)")
		case f.Component != "" && f.Link != "":
			add(field+".link", "a fault acts on a component or on a link, not both")
		}
		if f.Action == "" {
			add(field+".action", "required (%s)", faultActionList())
		}
		s.Faults = append(s.Faults, fault)
	}
	return s, is
}

func (r *rawKeys) keys() Keys {
	k := Keys{Distribution: Uniform}
	if r == nil {
		return k
	}
	if r.Distribution != "" {
		k.Distribution = Distribution(r.Distribution)
	}
	skewed := k.Distribution == Zipfian || k.Distribution == Latest
	switch {
	case r.Theta != nil:
		k.Theta = *r.Theta
	case skewed:
		k.Theta = DefaultTheta
	}
	switch {
	case r.Scrambled != nil:
		k.Scrambled = *r.Scrambled
	case k.Distribution == Zipfian:
		k.Scrambled = true
	}
	if r.HotKeys != nil {
		k.HotKeys = *r.HotKeys
		if k.HotKeys == 0 {
			k.HotKeys = -1 // explicitly zero: let validation say so
		}
	}
	switch {
	case r.HotFraction != nil:
		k.HotFraction = *r.HotFraction
	case k.Distribution == Hotspot && r.HotKeys == nil:
		k.HotFraction = DefaultHotFraction
	}
	switch {
	case r.HotOpFraction != nil:
		k.HotOpFraction = *r.HotOpFraction
	case k.Distribution == Hotspot:
		k.HotOpFraction = DefaultHotOpFraction
	}
	return k
}

// index finds the line of a field path ("executor.stages[1].duration") and
// the field at a line, from the document's nodes.
type index struct {
	root  int
	lines map[string]int
	nodes []indexed
}

type indexed struct {
	path  string
	line  int
	key   string // last key of path, for key nodes
	value string // for scalar value nodes
	kind  yaml.Kind
	tag   string // resolved tag of value nodes, e.g. "!!int"
}

func newIndex(root *yaml.Node) *index {
	x := &index{root: root.Line, lines: map[string]int{}}
	x.walk(root, "")
	return x
}

func (x *index) walk(n *yaml.Node, prefix string) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if prefix != "" {
				p = prefix + "." + k.Value
			}
			if _, dup := x.lines[p]; !dup {
				x.lines[p] = k.Line
			}
			x.nodes = append(x.nodes, indexed{path: p, line: k.Line, key: k.Value},
				indexed{path: p, line: v.Line, value: v.Value, kind: v.Kind, tag: v.ShortTag()})
			x.walk(v, p)
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", prefix, i)
			x.lines[p] = item.Line
			x.nodes = append(x.nodes, indexed{path: p, line: item.Line, value: item.Value, kind: item.Kind, tag: item.ShortTag()})
			x.walk(item, p)
		}
	}
}

// line is the line of field, or of its nearest present parent when the
// field is absent.
func (x *index) line(field string) int {
	for p := field; p != ""; {
		if l, ok := x.lines[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return x.root
}

// decodeError turns one of yaml's TypeError lines into a FieldError.
func (x *index) decodeError(file, msg string) error {
	// The formats of yaml.v3's TypeError lines.
	var (
		unknownField = regexp.MustCompile(`^line (\d+): field (.+) not found in type (\S+)$`)
		badType      = regexp.MustCompile("^line (\\d+): cannot unmarshal !!(\\w+)(?: `(.*)`)? into (.+)$")
		duplicateKey = regexp.MustCompile(`^line (\d+): mapping key "(.*)" already defined at line (\d+)$`)
		lineMsg      = regexp.MustCompile(`^line (\d+): (.*)$`)
	)
	if m := unknownField.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		field := m[2]
		for _, n := range x.nodes {
			if n.line == line && n.key == m[2] {
				field = n.path
				break
			}
		}
		return &FieldError{File: file, Line: line, Field: field,
			Msg: fmt.Sprintf("unknown field (want one of %s)", knownFields(m[3]))}
	}
	if m := badType.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		tag, value, into := m[2], m[3], m[4]
		prefix := strings.TrimSuffix(value, "...")
		var field string
		for _, n := range x.nodes {
			if n.line == line && n.key == "" && strings.HasPrefix(n.value, prefix) {
				field, value = n.path, n.value
				break
			}
		}
		got := fmt.Sprintf("%q", value)
		switch tag {
		case "seq":
			got = "a list"
		case "map":
			got = "a mapping"
		}
		return &FieldError{File: file, Line: line, Field: field,
			Msg: fmt.Sprintf("want %s, got %s", goTypeName(into), got)}
	}
	if m := duplicateKey.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		field := m[2]
		for _, n := range x.nodes {
			if n.line == line && n.key == m[2] {
				field = n.path
			}
		}
		return &FieldError{File: file, Line: line, Field: field, Msg: "given twice (first at line " + m[3] + ")"}
	}
	if m := lineMsg.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &FieldError{File: file, Line: line, Msg: m[2]}
	}
	return &FieldError{File: file, Msg: msg}
}

// intField reports whether path holds an integer. yaml.v3 quietly truncates
// a float such as 2.5 into an int field; the loader refuses it (1e3 and 1.0
// are fine).
func intField(path string) bool {
	switch regexp.MustCompile(`\[\d+\]`).ReplaceAllString(path, "[]") {
	case "users", "max_workers", "connections", "executor.vus", "mix[].weight", "keys.hot_keys":
		return true
	}
	return false
}

// notIntegers reports integer fields given a value that is not an integer.
func (x *index) notIntegers() []issue {
	var is []issue
	for _, n := range x.nodes {
		if n.key != "" || n.kind != yaml.ScalarNode || n.tag != "!!float" || !intField(n.path) {
			continue
		}
		if f, err := strconv.ParseFloat(n.value, 64); err != nil || f != math.Trunc(f) {
			is = append(is, issue{n.path, fmt.Sprintf("want an integer, got %q", n.value)})
		}
	}
	return is
}

// goTypeName says what a Go type holds in YAML terms.
func goTypeName(t string) string {
	t = strings.TrimPrefix(t, "*")
	switch {
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "scenarios."):
		return "a mapping"
	case strings.HasPrefix(t, "int"):
		return "an integer"
	case strings.HasPrefix(t, "float"):
		return "a number"
	case t == "bool":
		return "true or false"
	case t == "string":
		return "a string"
	}
	return t
}
