package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/yaml"

	"github.com/portcullis/portcullis/cmd/portcullis/internal/input"
	"github.com/portcullis/portcullis/cmd/portcullis/internal/review"
	"github.com/portcullis/portcullis/policies/engine"
)

// suiteSuffix names the YAML test suites `portcullis test` runs beside the
// Rego unit tests.
const suiteSuffix = "_suite.yaml"

// Suite is one *_suite.yaml file: cases evaluated through the engine exactly
// as the server evaluates a request (mutating webhook, then validating
// webhook on the mutated object).
type Suite struct {
	// Policies restricts every case to these policy IDs (all when empty).
	Policies []string `json:"policies,omitempty"`
	// Cases are the test cases.
	Cases []SuiteCase `json:"cases"`
}

// SuiteCase is one request and what the policies must decide.
type SuiteCase struct {
	Name string `json:"name"`
	// File is an object file (YAML or JSON), relative to the suite; or
	// Object, the object inline.
	File   string         `json:"file,omitempty"`
	Object map[string]any `json:"object,omitempty"`
	// Operation is CREATE (default), UPDATE or DELETE.
	Operation string `json:"operation,omitempty"`
	// OldObject (inline) or OldFile is the object before an UPDATE or DELETE.
	OldObject map[string]any `json:"oldObject,omitempty"`
	OldFile   string         `json:"oldFile,omitempty"`
	// Namespace given to an object that names none ("default").
	Namespace string `json:"namespace,omitempty"`
	// User and Groups make the request's userInfo.
	User   string   `json:"user,omitempty"`
	Groups []string `json:"groups,omitempty"`
	// Config is merged over the loaded configuration for this case.
	Config map[string]any `json:"config,omitempty"`
	// Expect is the outcome.
	Expect SuiteExpect `json:"expect"`
}

// SuiteExpect is a case's expected outcome. Lists given are exact: as many
// entries as the decision has, each matching one.
type SuiteExpect struct {
	Allowed    *bool           `json:"allowed,omitempty"`
	Violations *[]SuiteMessage `json:"violations,omitempty"`
	Warnings   *[]SuiteMessage `json:"warnings,omitempty"`
	// Patched is the object after the mutating policies (the object itself
	// when they change nothing).
	Patched map[string]any `json:"patched,omitempty"`
}

// SuiteMessage matches a violation or warning: its policy (when given) and
// its message exactly, or containing Contains.
type SuiteMessage struct {
	Policy   string `json:"policy,omitempty"`
	Message  string `json:"message,omitempty"`
	Contains string `json:"contains,omitempty"`
}

// suiteResult is one case's result.
type suiteResult struct {
	Suite, Case string
	Failures    []string
	Duration    time.Duration
}

// findSuites returns the *_suite.yaml files under each dir.
func findSuites(dirs []string) ([]string, error) {
	var out []string
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && p != dir && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			if !d.IsDir() && strings.HasSuffix(p, suiteSuffix) {
				out = append(out, p)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("find suites: %w", err)
		}
	}
	sort.Strings(out)
	return out, nil
}

// suiteRunner evaluates cases, loading one registry per distinct config
// override through the same loader as the rest of the run.
type suiteRunner struct {
	src     engine.Source
	base    *engine.Engine
	engines map[string]*engine.Engine
}

func (r *suiteRunner) engine(ctx context.Context, name string, cfg map[string]any) (*engine.Engine, error) {
	if len(cfg) == 0 {
		return r.base, nil
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	if e, ok := r.engines[string(b)]; ok {
		return e, nil
	}
	src := r.src
	src.ConfigFiles = append(append([]engine.ConfigFile(nil), src.ConfigFiles...), engine.ConfigFile{Name: name + " config", Data: b})
	reg, err := engine.Load(ctx, src)
	if err != nil {
		return nil, err
	}
	e := engine.New(reg, nil)
	r.engines[string(b)] = e
	return e, nil
}

// runSuite runs every case of one suite file.
func (r *suiteRunner) runSuite(ctx context.Context, path string) ([]suiteResult, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s Suite
	if err := yaml.UnmarshalStrict(raw, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(s.Cases) == 0 {
		return nil, fmt.Errorf("%s: no cases", path)
	}
	var out []suiteResult
	for i, c := range s.Cases {
		name := c.Name
		if name == "" {
			name = fmt.Sprintf("case %d", i)
		}
		res := suiteResult{Suite: path, Case: name}
		start := time.Now()
		fails, err := r.runCase(ctx, path, name, s.Policies, c)
		res.Duration = time.Since(start)
		if err != nil {
			fails = append(fails, err.Error())
		}
		res.Failures = fails
		out = append(out, res)
	}
	return out, nil
}

func (r *suiteRunner) object(suitePath, file string, inline map[string]any) (input.Object, error) {
	var data []byte
	source := suitePath
	switch {
	case file != "":
		source = filepath.Join(filepath.Dir(suitePath), file)
		b, err := os.ReadFile(source)
		if err != nil {
			return input.Object{}, err
		}
		data = b
	case inline != nil:
		b, err := json.Marshal(inline)
		if err != nil {
			return input.Object{}, err
		}
		data = b
	default:
		return input.Object{}, fmt.Errorf("no object: give file or object")
	}
	objs, problems := input.Parse(source, data)
	if len(problems) > 0 {
		return input.Object{}, problems[0]
	}
	if len(objs) != 1 {
		return input.Object{}, fmt.Errorf("%s: %d objects, want 1", source, len(objs))
	}
	return objs[0], nil
}

func (r *suiteRunner) runCase(ctx context.Context, path, name string, policies []string, c SuiteCase) ([]string, error) {
	eng, err := r.engine(ctx, path+": "+name, c.Config)
	if err != nil {
		return nil, err
	}
	obj, err := r.object(path, c.File, c.Object)
	if err != nil {
		return nil, err
	}
	b := review.Builder{User: c.User, Groups: c.Groups, Namespace: c.Namespace}
	if b.Namespace == "" {
		b.Namespace = "default"
	}
	req, err := b.Request(obj)
	if err != nil {
		return nil, err
	}
	if c.Operation != "" {
		op, err := review.ParseOperation(c.Operation)
		if err != nil {
			return nil, err
		}
		req.Operation = op
	}
	if c.OldFile != "" || c.OldObject != nil {
		old, err := r.object(path, c.OldFile, c.OldObject)
		if err != nil {
			return nil, fmt.Errorf("old object: %w", err)
		}
		req.OldObject.Raw = old.JSON
	}
	if req.Operation == admissionv1.Delete {
		req.OldObject.Raw, req.Object.Raw = obj.JSON, nil
	}
	out, err := review.Decide(ctx, eng, req, review.Options{Policies: policies})
	if err != nil {
		return nil, err
	}
	return checkExpect(c.Expect, out, obj.JSON)
}

// checkExpect compares an outcome with the expectation; each failure is
// one line.
func checkExpect(want SuiteExpect, out *review.Outcome, original []byte) ([]string, error) {
	var fails []string
	var violations []engine.Violation
	var warnings []string
	allowed := true
	for _, d := range []*engine.Decision{out.Mutate, out.Validate} {
		if d == nil {
			continue
		}
		violations = append(violations, d.Violations...)
		warnings = append(warnings, d.Warnings...)
		allowed = allowed && d.Allowed
	}
	if want.Allowed != nil && *want.Allowed != allowed {
		fails = append(fails, fmt.Sprintf("allowed = %t, want %t (violations: %s)", allowed, *want.Allowed, describeViolations(violations)))
	}
	if want.Violations != nil {
		var got []SuiteMessage
		for _, v := range violations {
			got = append(got, SuiteMessage{Policy: v.Policy, Message: v.Message})
		}
		fails = append(fails, matchMessages("violations", *want.Violations, got)...)
	}
	if want.Warnings != nil {
		var got []SuiteMessage
		for _, w := range warnings {
			id, msg, _ := strings.Cut(w, ": ")
			got = append(got, SuiteMessage{Policy: id, Message: msg})
		}
		fails = append(fails, matchMessages("warnings", *want.Warnings, got)...)
	}
	if want.Patched != nil {
		result := original
		if out.Mutate != nil && out.Mutate.Object != nil {
			result = out.Mutate.Object
		}
		var got any
		if err := json.Unmarshal(result, &got); err != nil {
			return nil, err
		}
		wantJSON, err := json.Marshal(want.Patched)
		if err != nil {
			return nil, err
		}
		var w any
		if err := json.Unmarshal(wantJSON, &w); err != nil {
			return nil, err
		}
		if !reflect.DeepEqual(got, w) {
			g, _ := yaml.Marshal(got)
			fails = append(fails, "patched object differs; got:\n"+indent(string(g)))
		}
	}
	return fails, nil
}

func describeViolations(vs []engine.Violation) string {
	if len(vs) == 0 {
		return "none"
	}
	var parts []string
	for _, v := range vs {
		parts = append(parts, fmt.Sprintf("[%s] %s", v.Policy, v.Message))
	}
	return strings.Join(parts, "; ")
}

// matchMessages pairs each wanted message with a distinct actual one.
func matchMessages(what string, want, got []SuiteMessage) []string {
	var fails []string
	used := make([]bool, len(got))
	for _, w := range want {
		found := false
		for i, g := range got {
			if used[i] || (w.Policy != "" && w.Policy != g.Policy) {
				continue
			}
			if (w.Message != "" && w.Message == g.Message) || (w.Message == "" && strings.Contains(g.Message, w.Contains)) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			fails = append(fails, fmt.Sprintf("%s: no %s", what, describeWant(w)))
		}
	}
	for i, g := range got {
		if !used[i] {
			fails = append(fails, fmt.Sprintf("%s: unexpected [%s] %s", what, g.Policy, g.Message))
		}
	}
	return fails
}

func describeWant(w SuiteMessage) string {
	p := w.Policy
	if p == "" {
		p = "any policy"
	}
	if w.Message != "" {
		return fmt.Sprintf("[%s] %q", p, w.Message)
	}
	return fmt.Sprintf("[%s] containing %q", p, w.Contains)
}

func indent(s string) string {
	var buf bytes.Buffer
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		buf.WriteString("    " + line + "\n")
	}
	return buf.String()
}

// runSuites runs every suite under dirs and returns one result per case.
func runSuites(ctx context.Context, src engine.Source, reg *engine.Registry, dirs []string) ([]suiteResult, error) {
	paths, err := findSuites(dirs)
	if err != nil || len(paths) == 0 {
		return nil, err
	}
	r := &suiteRunner{src: src, base: engine.New(reg, nil), engines: map[string]*engine.Engine{}}
	var all []suiteResult
	for _, p := range paths {
		results, err := r.runSuite(ctx, p)
		if err != nil {
			return all, err
		}
		all = append(all, results...)
	}
	return all, nil
}

// printSuites prints one line per failed case (every case when verbose)
// with its reasons, then the summary; it returns the number of failed cases.
func printSuites(results []suiteResult, verbose bool, w io.Writer) (failed int) {
	if len(results) == 0 {
		return 0
	}
	for _, res := range results {
		if len(res.Failures) == 0 {
			if verbose {
				fmt.Fprintf(w, "PASS %s: %s\n", res.Suite, res.Case)
			}
			continue
		}
		failed++
		fmt.Fprintf(w, "FAIL %s: %s\n", res.Suite, res.Case)
		for _, f := range res.Failures {
			fmt.Fprintf(w, "  %s\n", f)
		}
	}
	fmt.Fprintf(w, "SUITES: %d/%d cases passed\n", len(results)-failed, len(results))
	return failed
}
