package app

import (
	"reflect"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// A policy's print() output goes to stderr, tagged with the policy and the
// call's file:line; the report on stdout is unchanged by it.
func TestValidatePrintGolden(t *testing.T) {
	code, stdout, stderr := run(t, "", "validate", "--builtin=false", "--policies", "testdata/policies-print",
		"-f", "testdata/manifests/show-input/pod.yaml")
	if code != ExitDenied {
		t.Fatalf("exit %d, want %d; stderr %q", code, ExitDenied, stderr)
	}
	golden(t, "print.txt", stdout)
	golden(t, "print.stderr", stderr)
}

// The server sends print() output to its debug log only: above debug
// there is no printer at all (print compiled out); at debug each call is
// one "policy print" entry naming the policy and file:line.
func TestServeDebugPrinter(t *testing.T) {
	if p := debugPrinter(zap.New(zapcore.NewNopCore())); p != nil {
		t.Error("a printer without a debug log")
	}
	info, _ := observer.New(zapcore.InfoLevel)
	if p := debugPrinter(zap.New(info)); p != nil {
		t.Error("a printer at info level")
	}
	core, logs := observer.New(zapcore.DebugLevel)
	debugPrinter(zap.New(core))("printer", "printer.rego:9", "labels of web are {}")
	entries := logs.AllUntimed()
	if len(entries) != 1 {
		t.Fatalf("%d entries, want 1", len(entries))
	}
	e := entries[0]
	want := map[string]any{"policy": "printer", "location": "printer.rego:9", "output": "labels of web are {}"}
	if e.Level != zapcore.DebugLevel || e.Message != "policy print" || !reflect.DeepEqual(e.ContextMap(), want) {
		t.Errorf("entry %v %q %v", e.Level, e.Message, e.ContextMap())
	}
}
