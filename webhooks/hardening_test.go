package webhooks

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/portcullis/portcullis/policies/engine"
)

// runaway loops for minutes unless cancelled (3000³ steps), allocating
// little; it reads the object so that it cannot be folded away.
func runaway(id string) string {
	return `# METADATA
# title: Runaway
# custom:
#   kind: validating
package portcullis.` + id + `

deny contains {"msg": "never"} if {
	n := numbers.range(1, 3000)
	some a in n
	some b in n
	some c in n
	(a * b) * c < count(input.request.object.spec.containers) - 10
}
`
}

// waitGoroutines polls until the goroutine count is back to baseline (or
// below), bounded; on failure it dumps the goroutines that remain.
func waitGoroutines(t *testing.T, baseline int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= baseline {
			return
		}
		if time.Now().After(deadline) {
			var buf bytes.Buffer
			_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
			t.Fatalf("%d goroutines 10s after the requests, baseline %d:\n%s", n, baseline, buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A policy that loops for minutes is cancelled at the server-side deadline:
// the answer comes back at the deadline, names the policy, follows its
// failure mode, and leaves no goroutine behind. Not parallel: it counts
// goroutines.
func TestRunawayPolicy(t *testing.T) {
	const timeout = 300 * time.Millisecond
	body := readTestdata(t, "pod-allowed.json")
	tests := map[string]struct {
		id, config string
		allowed    bool
		code       int32
		// msgPrefix: policies after the runaway one are reported too (see
		// TestWebhookDeadline); only the runaway policy's part is pinned.
		msgPrefix string
		warnings  []string
		failed    string
	}{
		"failure mode deny (the default for validating)": {
			id: "loop", code: 403,
			msgPrefix: "[loop] policy timed out; denied by its failure mode (deny)",
			failed:    "loop",
		},
		// Evaluated last (IDs sort), so no other policy meets an expired deadline.
		"failure mode allow from config": {
			id: "zz_loop", config: "policies:\n  zz_loop:\n    failure_mode: allow\n",
			allowed: true, code: 200,
			warnings: []string{"zz_loop: policy timed out; admitted by its failure mode (allow)"},
			failed:   "zz_loop",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var configs [][]byte
			if tc.config != "" {
				configs = append(configs, []byte(tc.config))
			}
			eng := newEngine(t, fixturePolicies(t, map[string]string{tc.id + "/" + tc.id + ".rego": runaway(tc.id)}), configs...)
			wh := webhook(eng, engine.Validating, nil, nil)
			wh.Handler.(*Handler).Timeout = timeout
			runtime.GC()
			baseline := runtime.NumGoroutine()

			// Several at once, as a burst of pods from one ReplicaSet would.
			const concurrent = 4
			type result struct {
				took time.Duration
				resp *admissionv1.AdmissionResponse
				code int
			}
			results := make(chan result, concurrent)
			for range concurrent {
				go func() {
					start := time.Now()
					rec := do(wh, http.MethodPost, "/validate", "application/json", body)
					r := result{took: time.Since(start), code: rec.Code}
					if rec.Code == http.StatusOK {
						r.resp = decodeResponse(t, rec)
					}
					results <- r
				}()
			}
			for range concurrent {
				r := <-results
				if r.code != http.StatusOK {
					t.Fatalf("status %d", r.code)
				}
				// At the deadline, not when the loop would end (minutes); the
				// upper bound is generous for a loaded 2-core machine.
				if r.took < timeout || r.took > timeout+1500*time.Millisecond {
					t.Errorf("answered after %v with a %v deadline", r.took, timeout)
				}
				t.Logf("answered after %v", r.took)
				resp := r.resp
				if resp.Allowed != tc.allowed || resp.Result == nil || resp.Result.Code != tc.code {
					t.Errorf("allowed %v, result %+v", resp.Allowed, resp.Result)
				}
				if !strings.HasPrefix(resp.Result.Message, tc.msgPrefix) || strings.Contains(resp.Result.Message, "never") {
					t.Errorf("message %q, want it to start with %q", resp.Result.Message, tc.msgPrefix)
				}
				if !reflect.DeepEqual(resp.Warnings, tc.warnings) {
					t.Errorf("warnings %q, want %q", resp.Warnings, tc.warnings)
				}
				if got := strings.Split(resp.AuditAnnotations[AuditFailed], ","); got[0] != tc.failed {
					t.Errorf("audit %s = %v, want %s first", AuditFailed, resp.AuditAnnotations, tc.failed)
				}
			}
			waitGoroutines(t, baseline)
		})
	}
}

// slowConn is one slowloris connection: what it sent and when the server
// closed it.
type slowConn struct {
	kind   string
	sent   int
	closed time.Duration // since the client started dialing
	reply  string        // first line the server answered, if any
	// handshakeCut: the server closed the connection during the TLS
	// handshake, its header timeout having passed.
	handshakeCut bool
	err          error
}

// Slowloris: many connections that never finish their headers or body, or
// never even finish the TLS handshake, are closed by the read-header and
// read timeouts, while normal requests keep succeeding.
func TestServerSlowloris(t *testing.T) {
	t.Parallel()
	const (
		headerTimeout = 300 * time.Millisecond
		readTimeout   = 800 * time.Millisecond
		drip          = 20 * time.Millisecond
		perKind       = 20
		silent        = 10
	)
	ts := startServer(t, ServerOptions{ReadHeaderTimeout: headerTimeout, ReadTimeout: readTimeout}, nil, nil)
	addr := ts.srv.Addr().String()
	body := readTestdata(t, "pod-allowed.json")

	// dripping sends prefix at once, then one byte of rest every drip (then
	// padding), until the server closes the connection.
	dripping := func(kind string, prefix, rest []byte) slowConn {
		sc := slowConn{kind: kind}
		// Before dialing: the server's timers start once the connection is
		// up, which may be well before this goroutine runs again.
		start := time.Now()
		raw, err := net.Dial("tcp", addr)
		if err != nil {
			sc.err = err
			return sc
		}
		conn := tls.Client(raw, &tls.Config{RootCAs: ts.roots, ServerName: "127.0.0.1"})
		defer conn.Close()
		if err := conn.Handshake(); err != nil {
			// On a starved machine the handshake itself can outlast the
			// header timeout (which bounds it too): the server cutting the
			// connection then is the behaviour under test, not a failure.
			sc.closed = time.Since(start)
			if sc.closed < headerTimeout-50*time.Millisecond {
				sc.err = fmt.Errorf("handshake: %w", err)
			}
			sc.handshakeCut = true
			return sc
		}
		closed := make(chan string, 1)
		go func() {
			_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			b, _ := io.ReadAll(conn) // returns when the server closes
			line, _, _ := strings.Cut(string(b), "\r\n")
			closed <- line
		}()
		if _, err := conn.Write(prefix); err != nil {
			sc.err = err
			return sc
		}
		for i := 0; ; i++ {
			select {
			case sc.reply = <-closed:
				sc.closed = time.Since(start)
				return sc
			case <-time.After(drip):
			}
			b := []byte("a")
			if i < len(rest) {
				b = rest[i : i+1]
			}
			if _, err := conn.Write(b); err != nil {
				sc.reply = <-closed
				sc.closed = time.Since(start)
				return sc
			}
			sc.sent++
		}
	}
	silentConn := func() slowConn {
		sc := slowConn{kind: "no handshake"}
		start := time.Now()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			sc.err = err
			return sc
		}
		defer conn.Close()
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, _ = io.ReadAll(conn)
		sc.closed = time.Since(start)
		return sc
	}

	headers := []byte("POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-Pad: ")
	bodyHeaders := []byte(fmt.Sprintf("POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", 1<<20))
	var wg sync.WaitGroup
	slow := make(chan slowConn, 2*perKind+silent)
	for range perKind {
		wg.Add(2)
		go func() { defer wg.Done(); slow <- dripping("headers", nil, headers) }()
		go func() { defer wg.Done(); slow <- dripping("body", bodyHeaders, body) }()
	}
	for range silent {
		wg.Add(1)
		go func() { defer wg.Done(); slow <- silentConn() }()
	}

	// Meanwhile, normal requests (a new connection each) keep succeeding.
	client := ts.client(nil)
	var worst time.Duration
	for i := 0; i < 20; i++ {
		start := time.Now()
		status, err := ts.review(t, client, body)
		took := time.Since(start)
		if err != nil || status != http.StatusOK {
			t.Errorf("normal request %d: %d %v", i, status, err)
		}
		worst = max(worst, took)
		time.Sleep(25 * time.Millisecond)
	}
	if worst > 2*time.Second {
		t.Errorf("slowest normal request took %v", worst)
	}
	wg.Wait()
	close(slow)

	limits := map[string]time.Duration{"headers": headerTimeout, "body": readTimeout, "no handshake": headerTimeout}
	n := 0
	for sc := range slow {
		n++
		if sc.err != nil {
			t.Errorf("%s: %v", sc.kind, sc.err)
			continue
		}
		limit := limits[sc.kind]
		if sc.handshakeCut {
			if sc.closed > headerTimeout+3*time.Second {
				t.Errorf("%s: handshake cut after %v, header timeout %v", sc.kind, sc.closed, headerTimeout)
			}
			continue
		}
		if sc.closed < limit-50*time.Millisecond || sc.closed > limit+3*time.Second {
			t.Errorf("%s: closed after %v (sent %d bytes slowly), timeout %v", sc.kind, sc.closed, sc.sent, limit)
		}
		// A body or headers cut by a read timeout is a bad request (net/http
		// answers 400 to a header timeout on TLS); no handshake, no answer.
		want := "HTTP/1.1 400 Bad Request"
		if sc.kind == "no handshake" {
			want = ""
		}
		if sc.reply != want {
			t.Errorf("%s: server answered %q, want %q", sc.kind, sc.reply, want)
		}
	}
	if n != 2*perKind+silent {
		t.Errorf("%d slow connections reported", n)
	}
	t.Logf("slowest of 20 normal requests during %d slow connections: %v", 2*perKind+silent, worst)
}

// levelLogger is the logger serve builds (JSON, ISO8601 times; see
// app.NewLogger) at the given level, writing into buf.
func levelLogger(level zapcore.Level, buf *bytes.Buffer) *zap.Logger {
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	return zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(encCfg), zapcore.AddSync(buf), level))
}

// Canary values in env values, Secret data (base64 and plain), annotations
// and userInfo.extra appear in no log line at any level and in no answer,
// on every path: denial, warning, mutation, bad requests, engine errors,
// recovered panics, policy timeouts and failing policies.
func TestNoSecretsAtAnyLogLevel(t *testing.T) {
	t.Parallel()
	canaryPod := readTestdata(t, "pod-canary.json")
	canarySecret := readTestdata(t, "secret-canary.json")
	warnOnly := bytes.Replace(canaryPod, []byte(`"privileged": true`), []byte(`"privileged": false`), 1)
	if bytes.Equal(warnOnly, canaryPod) {
		t.Fatal("pod-canary.json changed: no privileged: true")
	}
	eng := newEngine(t, fixturePolicies(t, map[string]string{
		"leaky/leaky.rego": canaryLeaks,
		"loop/loop.rego":   runaway("loop"),
	}), []byte("policies:\n  loop:\n    enabled: false\n"))
	timeoutEng := newEngine(t, fixturePolicies(t, map[string]string{"loop/loop.rego": runaway("loop")}))

	// Errors shaped like the engine's own (a bad request wraps ErrBadRequest
	// with a decoder message; internal ones name what failed).
	engineErr := func(err error) Evaluator {
		return evaluatorFunc(func(context.Context, engine.Phase, *admissionv1.AdmissionRequest, engine.Options) (*engine.Decision, error) {
			return nil, err
		})
	}
	type path struct {
		eng         Evaluator
		phase       engine.Phase
		body        []byte
		contentType string
		maxBody     int64
		timeout     time.Duration
		panics      bool
		status      int
	}
	paths := map[string]path{
		"denial with a warning": {eng: eng, phase: engine.Validating, body: canaryPod, status: 200},
		"warning only":          {eng: eng, phase: engine.Validating, body: warnOnly, status: 200},
		"denied Secret":         {eng: eng, phase: engine.Validating, body: canarySecret, status: 200},
		"mutation patch and a failing edit": {
			eng: eng, phase: engine.Mutating, body: canaryPod, status: 200,
		},
		"Secret on the mutating path": {eng: eng, phase: engine.Mutating, body: canarySecret, status: 200},
		"policy timeout":              {eng: timeoutEng, phase: engine.Validating, body: canaryPod, timeout: 100 * time.Millisecond, status: 200},
		"recovered panic":             {eng: eng, phase: engine.Validating, body: canaryPod, panics: true, status: 500},
		"engine error: bad request": {
			eng:  engineErr(fmt.Errorf("%w: object is not a JSON object: invalid character '}' after object key", engine.ErrBadRequest)),
			body: canaryPod, phase: engine.Validating, status: 200,
		},
		"engine error: internal": {
			eng:  engineErr(errors.New("encode mutated object: json: unsupported value: NaN")),
			body: canaryPod, phase: engine.Mutating, status: 200,
		},
		"bad request: object is not an object": {
			eng: eng, phase: engine.Validating, status: 400,
			body: bytes.Replace(canaryPod, []byte(`"object": {`), []byte(`"object": ["`+canary+`", {`), 1),
		},
		"bad request: malformed JSON right after the canary": {
			eng: eng, phase: engine.Validating, status: 400,
			body: canaryPod[:bytes.Index(canaryPod, []byte(canary))+len(canary)+5],
		},
		"bad request: extra of the wrong type": {
			eng: eng, phase: engine.Validating, status: 400,
			body: bytes.Replace(canaryPod, []byte(`[
          "CANARY-SECRET-1234"
        ]`), []byte(`"CANARY-SECRET-1234"`), 1),
		},
		"bad request: wrong version": {
			eng: eng, phase: engine.Validating, status: 400,
			body: bytes.Replace(canarySecret, []byte(`"admission.k8s.io/v1"`), []byte(`"admission.k8s.io/v1beta1"`), 1),
		},
		"wrong content type": {eng: eng, phase: engine.Validating, body: canarySecret, contentType: "text/plain", status: 415},
		"oversize":           {eng: eng, phase: engine.Validating, body: canaryPod, maxBody: 512, status: 413},
	}
	if bytes.Equal(paths["bad request: extra of the wrong type"].body, canaryPod) {
		t.Fatal("pod-canary.json changed: no userInfo.extra list")
	}
	for _, level := range []zapcore.Level{zapcore.DebugLevel, zapcore.InfoLevel, zapcore.WarnLevel, zapcore.ErrorLevel} {
		for name, p := range paths {
			t.Run(level.String()+"/"+name, func(t *testing.T) {
				t.Parallel()
				var buf bytes.Buffer
				log := levelLogger(level, &buf)
				wh := webhook(p.eng, p.phase, log, nil)
				if p.timeout > 0 {
					wh.Handler.(*Handler).Timeout = p.timeout
				}
				if p.maxBody > 0 {
					wh.MaxBodyBytes = p.maxBody
				}
				if p.panics {
					wh.Handler = &panicOnce{next: wh.Handler}
				}
				ct := p.contentType
				if ct == "" {
					ct = "application/json"
				}
				rec := do(wh, http.MethodPost, "/validate", ct, p.body)
				if rec.Code != p.status {
					t.Fatalf("status %d, want %d: %s", rec.Code, p.status, rec.Body)
				}
				for _, c := range []string{canary, canaryBase64} {
					if strings.Contains(buf.String(), c) {
						t.Errorf("log at %s leaks %q:\n%s", level, c, buf.String())
					}
				}
				assertNoCanary(t, nil, rec.Body.Bytes())
				// The logger is live: at debug and info every request leaves
				// a line.
				if level <= zapcore.InfoLevel && buf.Len() == 0 {
					t.Errorf("no log line at %s", level)
				}
			})
		}
	}
}
