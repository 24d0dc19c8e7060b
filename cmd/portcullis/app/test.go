package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/cover"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/portcullis/portcullis/policies/engine"
)

// TestOptions configure `portcullis test`.
type TestOptions struct {
	// Dirs hold the policies whose tests run (*_test.rego and *_suite.yaml);
	// they are stacked over Source's layers as more --policies would be.
	// None: the built-in policies' own tests.
	Dirs []string
	// Source is where the rest of the policy set and the configuration come
	// from, exactly as for serve and validate.
	Source  PolicySourceOptions
	Verbose bool
	Filter  string
	Timeout time.Duration
	// Coverage prints the unit tests' per-file line coverage of the
	// policies (OPA's cover package), and the lines not covered.
	Coverage bool
	// CoverageMin fails the run (exit 1) when the overall coverage is
	// below this percentage; it implies Coverage.
	CoverageMin float64
	// Output is text (opa test's report), json or junit.
	Output string
}

// testFormats are the formats of `portcullis test -o`.
var testFormats = []string{"text", "json", "junit"}

// AddFlags registers the test flags.
func (o *TestOptions) AddFlags(fs *pflag.FlagSet) {
	o.Source.AddFlags(fs)
	fs.BoolVarP(&o.Verbose, "verbose", "v", false, "print every test")
	fs.StringVarP(&o.Filter, "run", "r", "", "run only tests whose name contains this")
	fs.DurationVar(&o.Timeout, "timeout", 30*time.Second, "timeout for each test")
	fs.BoolVar(&o.Coverage, "coverage", false, "print the Rego unit tests' line coverage of each policy file, and the lines not covered")
	fs.Float64Var(&o.CoverageMin, "coverage-min", 0, "fail (exit 1) when the overall coverage is below this percentage (implies --coverage)")
	fs.StringVarP(&o.Output, "output", "o", "text", "output format: "+strings.Join(testFormats, ", ")+" (json and junit: the coverage report goes to stderr)")
}

// Validate checks the directories.
func (o *TestOptions) Validate() error {
	if o.Output != "" && !slices.Contains(testFormats, o.Output) {
		return fmt.Errorf("--output %q: must be one of %s", o.Output, strings.Join(testFormats, ", "))
	}
	for _, dir := range o.Dirs {
		fi, err := os.Stat(dir)
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s: not a directory", dir)
		}
	}
	if len(o.Dirs) == 0 && o.Source.NoBuiltin {
		return errors.New("--builtin=false: name a directory of policies to test")
	}
	return o.Source.Validate()
}

func newTestCommand(streams IO) *cobra.Command {
	o := &TestOptions{}
	cmd := &cobra.Command{
		Use:   "test [DIR]...",
		Short: "Test policy directories as the server loads them (default: the built-in policies)",
		Long: `Test loads the policies exactly as 'serve' does (the built-in policies unless
--builtin=false, each --policies directory, then each DIR stacked over them;
the same METADATA checks; data.portcullis.config from the built-in defaults,
each directory's config.yaml and --config) and refuses what serve would
refuse. It then runs the *_test.rego unit tests of each DIR with OPA's test
runner, as 'opa test DIR' would, and the *_suite.yaml cases, so a policy
author needs only this binary. -o json or junit reports each test and case
(name, file, pass/fail, failure reasons, duration).

Exit codes: 0 all tests pass, 1 a test failed, 2 the policies do not load.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Dirs = args
			return runE(o, streams)(cmd, args)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

// testSource returns the engine source with each DIR as a layer over the
// others, and whether a layer's tests run.
func (o *TestOptions) testSource() (engine.Source, func(int) bool, error) {
	src, err := o.Source.Source()
	if err != nil {
		return engine.Source{}, nil, err
	}
	if len(o.Dirs) == 0 {
		// The built-in layer is the first one.
		return src, func(i int) bool { return i == 0 }, nil
	}
	first := len(src.Layers)
	for _, dir := range o.Dirs {
		extra := PolicySourceOptions{NoBuiltin: true, PoliciesDirs: []string{dir}}
		s, err := extra.Source()
		if err != nil {
			return engine.Source{}, nil, err
		}
		src.Layers = append(src.Layers, s.Layers...)
	}
	return src, func(i int) bool { return i >= first }, nil
}

// Run loads the policies as the server does, then runs the tests and
// reports them like opa test.
func (o *TestOptions) Run(ctx context.Context, streams IO) error {
	// The suites' print() output; the Rego unit tests' is OPA's (shown
	// with a failed test, or with -v).
	o.Source.Print = stderrPrinter(streams.Err)
	if o.Output == "" {
		o.Output = "text"
	}
	src, tests, err := o.testSource()
	if err != nil {
		return usageError(err)
	}
	reg, err := engine.Load(ctx, src)
	if err != nil {
		return usageError(err)
	}
	for _, w := range reg.Warnings {
		fmt.Fprintf(streams.Err, "warning: %s\n", w)
	}
	if o.Verbose {
		for _, n := range reg.Notices {
			fmt.Fprintf(streams.Err, "note: %s\n", n)
		}
	}
	modules, _, err := engine.Modules(src, tests)
	if err != nil {
		return usageError(err)
	}
	// The same sandbox as serve and validate: the tests run the policies
	// with the built-ins the configuration allows, and no others.
	sandbox, err := engine.NewSandbox(reg.Config())
	if err != nil {
		return usageError(err)
	}
	if err := sandbox.Check(modules); err != nil {
		return usageError(err)
	}
	store := inmem.NewFromObject(map[string]any{"portcullis": map[string]any{"config": reg.Config()}})
	txn, err := store.NewTransaction(ctx)
	if err != nil {
		return err
	}
	defer store.Abort(ctx, txn)
	runner := tester.NewRunner().
		SetCompiler(ast.NewCompiler().WithEnablePrintStatements(true).WithCapabilities(sandbox.Capabilities())).
		SetStore(store).
		SetModules(modules).
		SetTimeout(o.Timeout).
		CapturePrintOutput(true).
		SetDefaultRegoVersion(ast.RegoV1)
	if o.Filter != "" {
		runner = runner.Filter(o.Filter)
	}
	var cov *cover.Cover
	if o.Coverage || o.CoverageMin > 0 {
		cov = cover.New()
		runner = runner.SetCoverageQueryTracer(cov)
	}
	ch, err := runner.RunTests(ctx, txn)
	if err != nil {
		return usageError(fmt.Errorf("run tests: %w", err))
	}
	var results []*tester.Result
	for r := range ch {
		results = append(results, r)
	}
	// The runner's order varies between runs; report in file and line order.
	sort.SliceStable(results, func(i, j int) bool {
		a, b := results[i].Location, results[j].Location
		if a == nil || b == nil {
			return a != nil
		}
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Row < b.Row
	})
	failed := 0
	for _, r := range results {
		if r.Fail || r.Error != nil {
			failed++
		}
	}
	text := o.Output == "text"
	if text {
		rep := tester.PrettyReporter{Output: streams.Out, Verbose: o.Verbose}
		out := make(chan *tester.Result, len(results))
		for _, r := range results {
			out <- r
		}
		close(out)
		if err := rep.Report(out); err != nil {
			return err
		}
	}
	if cov != nil {
		w := streams.Out
		if !text {
			w = streams.Err
		}
		if !coverageReport(cov, modules, o.Dirs, o.CoverageMin, w) {
			failed++
		}
	}
	suiteResults, err := runSuites(ctx, src, reg, o.Dirs)
	if err != nil {
		return usageError(err)
	}
	cases := len(suiteResults)
	switch o.Output {
	case "text":
		failed += printSuites(suiteResults, o.Verbose, streams.Out)
	default:
		for _, r := range suiteResults {
			if len(r.Failures) > 0 {
				failed++
			}
		}
		if len(results) == 0 && cases == 0 {
			break
		}
		write := writeTestJSON
		if o.Output == "junit" {
			write = writeTestJUnit
		}
		if err := write(streams.Out, testEntries(results, suiteResults)); err != nil {
			return err
		}
	}
	if len(results) == 0 && cases == 0 {
		return usageError(errors.New("no tests found"))
	}
	if failed > 0 {
		return &exitError{code: ExitDenied}
	}
	return nil
}

// coverageReport prints per-file line coverage of the policy modules (test
// files left out) and the ranges not covered; it reports whether the
// overall coverage meets min.
func coverageReport(cov *cover.Cover, modules map[string]*ast.Module, dirs []string, min float64, w io.Writer) bool {
	policiesOnly := map[string]*ast.Module{}
	for name, m := range modules {
		if strings.HasSuffix(name, "_test.rego") {
			continue
		}
		under := len(dirs) == 0 // the built-in policies' own run
		for _, d := range dirs {
			under = under || strings.HasPrefix(name, filepath.ToSlash(filepath.Clean(d))+"/")
		}
		if under {
			policiesOnly[name] = m
		}
	}
	rep := cov.Report(policiesOnly)
	names := make([]string, 0, len(rep.Files))
	for name := range rep.Files {
		if policiesOnly[name] != nil { // the report also lists traced test and lib files
			names = append(names, name)
		}
	}
	sort.Strings(names)
	fmt.Fprintln(w, "COVERAGE:")
	covered, total := 0, 0
	for _, name := range names {
		f := rep.Files[name]
		covered, total = covered+f.CoveredLines, total+f.CoveredLines+f.NotCoveredLines
		fmt.Fprintf(w, "  %6.2f%%  %s (%d/%d lines)\n", f.Coverage, name, f.CoveredLines, f.CoveredLines+f.NotCoveredLines)
		var rows []string
		seen := map[string]bool{}
		for _, r := range f.NotCovered {
			row := strconv.Itoa(r.Start.Row)
			if r.End.Row != r.Start.Row {
				row += "-" + strconv.Itoa(r.End.Row)
			}
			if !seen[row] {
				seen[row] = true
				rows = append(rows, row)
			}
		}
		if len(rows) > 0 {
			fmt.Fprintf(w, "           not covered: lines %s\n", strings.Join(rows, ", "))
		}
	}
	pct := 100.0
	if total > 0 {
		pct = 100 * float64(covered) / float64(total)
	}
	fmt.Fprintf(w, "  %6.2f%%  total (%d/%d lines)\n", pct, covered, total)
	if min > 0 && pct < min {
		fmt.Fprintf(w, "coverage %.2f%% is below --coverage-min %.2f%%\n", pct, min)
		return false
	}
	return true
}
