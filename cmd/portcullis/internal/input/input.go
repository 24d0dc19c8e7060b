// Package input reads Kubernetes objects for the CLI the way `kubectl apply`
// reads them: files, directories, stdin and kustomizations; YAML documents,
// JSON streams and Lists. Nothing stops at the first bad document: every
// object that can be read is returned with its position (source, document,
// line), and every document that cannot be read is a Problem beside them.
package input

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// DefaultMaxBytes is the default limit on all input read in one run.
const DefaultMaxBytes = 64 << 20

// Stdin is the source name of standard input.
const Stdin = "-"

// ErrTooLarge is returned when the input passes the size limit.
var ErrTooLarge = errors.New("input too large")

// Position says where an object or a problem is.
type Position struct {
	// Source is the file path, "-" for stdin, or the kustomization directory.
	Source string
	// Doc is the document's index in its source (0-based; comment-only
	// documents are not counted).
	Doc int
	// Item is the position within a List, or -1.
	Item int
	// Line is the 1-based line where the document (or List item) starts in
	// its source; 0 when unknown (objects rendered by kustomize).
	Line int
}

// Object is one Kubernetes object of the input.
type Object struct {
	Position
	// GVK, Name (or generateName) and Namespace as written.
	GVK       schema.GroupVersionKind
	Name      string
	Namespace string
	// JSON is the object as JSON.
	JSON []byte
	// Text is the document as written (for a List item, the whole List),
	// and JSONText whether it is JSON.
	Text     []byte
	JSONText bool
	// TextLine is the line of Text's first byte in the source.
	TextLine int
	// Strict is the error of a strict reading of the document (duplicate
	// keys), nil when there is none; the object was still read.
	Strict error
}

// Problem is a document or a file that is not a readable Kubernetes object.
type Problem struct {
	Position
	Err error
	// Skipped is true for files found by walking a directory: those are
	// reported and skipped (Chart.yaml, values.yaml, package.json, Helm
	// templates, kustomization.yaml are not objects). Problems in files
	// named on the command line are errors.
	Skipped bool
}

// Error formats the problem as "source:line: error".
func (p Problem) Error() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", p.Source, p.Line, p.Err)
	}
	return fmt.Sprintf("%s: %v", p.Source, p.Err)
}

// Unwrap returns the underlying error.
func (p Problem) Unwrap() error { return p.Err }

// Spec is one input named on the command line.
type Spec struct {
	// Path is a file, a directory or "-".
	Path string
	// Kustomize renders Path as a kustomization (-k).
	Kustomize bool
}

// Input is everything read.
type Input struct {
	Objects  []Object
	Problems []Problem
}

// Reader reads inputs within a byte budget.
type Reader struct {
	// Stdin is read for the source "-" (at most once).
	Stdin io.Reader
	// MaxBytes bounds the bytes read from all sources together (files,
	// pipes, devices, stdin, kustomize output); DefaultMaxBytes when 0.
	MaxBytes int64
	// Recursive walks directories into subdirectories.
	Recursive bool

	read      int64
	stdinRead bool
}

// Read reads every spec in order. It returns an error only for what stops
// the whole run: the size limit (ErrTooLarge, naming the source) or ctx
// ending. A read blocked on a pipe or FIFO is abandoned when ctx ends (the
// goroutine stays blocked in the read until the process exits).
func (r *Reader) Read(ctx context.Context, specs []Spec) (*Input, error) {
	type result struct {
		in  *Input
		err error
	}
	done := make(chan result, 1)
	go func() {
		in, err := r.read1(ctx, specs)
		done <- result{in, err}
	}()
	select {
	case res := <-done:
		return res.in, res.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (r *Reader) read1(ctx context.Context, specs []Spec) (*Input, error) {
	in := &Input{}
	for _, s := range specs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var err error
		switch {
		case s.Kustomize:
			err = r.kustomize(s.Path, in)
		case s.Path == Stdin:
			if r.stdinRead {
				in.Problems = append(in.Problems, Problem{Position: Position{Source: Stdin, Item: -1}, Err: errors.New("stdin given more than once")})
				continue
			}
			r.stdinRead = true
			var stdin io.Reader = r.Stdin
			if stdin == nil {
				stdin = strings.NewReader("")
			}
			err = r.readSource(Stdin, stdin, false, in)
		default:
			err = r.readPath(ctx, s.Path, in)
		}
		if err != nil {
			return nil, err
		}
	}
	return in, nil
}

func (r *Reader) readPath(ctx context.Context, path string, in *Input) error {
	fi, err := os.Stat(path)
	if err != nil {
		in.Problems = append(in.Problems, Problem{Position: Position{Source: path, Item: -1}, Err: err})
		return nil
	}
	if !fi.IsDir() {
		return r.readFile(path, false, in)
	}
	files, err := r.walk(path)
	if err != nil {
		in.Problems = append(in.Problems, Problem{Position: Position{Source: path, Item: -1}, Err: err})
	}
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := r.readFile(f, true, in); err != nil {
			return err
		}
	}
	return nil
}

// Extensions are the file name extensions read when walking a directory,
// as kubectl's (".json", ".yaml", ".yml").
var Extensions = []string{".json", ".yaml", ".yml"}

// walk lists the manifest files under dir in lexical order. Hidden
// directories (.git, .github) are not entered.
func (r *Reader) walk(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != dir && (strings.HasPrefix(d.Name(), ".") || !r.Recursive) {
				return fs.SkipDir
			}
			return nil
		}
		ext := strings.ToLower(filepath.Ext(path))
		for _, e := range Extensions {
			if ext == e {
				files = append(files, path)
			}
		}
		return nil
	})
	sort.Strings(files)
	return files, err
}

func (r *Reader) readFile(path string, walked bool, in *Input) error {
	f, err := os.Open(path)
	if err != nil {
		in.Problems = append(in.Problems, Problem{Position: Position{Source: path, Item: -1}, Err: err, Skipped: walked})
		return nil
	}
	defer f.Close()
	return r.readSource(path, f, walked, in)
}

// readSource reads one source within the budget and parses it.
func (r *Reader) readSource(source string, rd io.Reader, walked bool, in *Input) error {
	data, err := r.readBounded(source, rd)
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			return err
		}
		in.Problems = append(in.Problems, Problem{Position: Position{Source: source, Item: -1}, Err: err, Skipped: walked})
		return nil
	}
	r.parse(source, data, walked, in)
	return nil
}

func (r *Reader) parse(source string, data []byte, walked bool, in *Input) {
	objs, probs := Parse(source, data)
	if walked && isKustomization(source) {
		// A kustomization file is not an object even when it has no
		// apiVersion/kind to say so.
		objs, probs = nil, []Problem{{Position: Position{Source: source, Item: -1}, Err: fmt.Errorf("%w: a kustomization; render it with -k %s", ErrNotObject, filepath.Dir(source))}}
	}
	for i := range probs {
		probs[i].Skipped = walked
	}
	in.Objects = append(in.Objects, objs...)
	in.Problems = append(in.Problems, probs...)
}

func isKustomization(path string) bool {
	switch filepath.Base(path) {
	case "kustomization.yaml", "kustomization.yml", "Kustomization":
		return true
	}
	return false
}

func (r *Reader) limit() int64 {
	if r.MaxBytes <= 0 {
		return DefaultMaxBytes
	}
	return r.MaxBytes
}

// readBounded reads all of rd, failing with ErrTooLarge (naming source) once
// the run's total passes the limit: /dev/zero, an endless pipe or a huge
// file cost at most the limit in memory.
func (r *Reader) readBounded(source string, rd io.Reader) ([]byte, error) {
	left := r.limit() - r.read
	data, err := io.ReadAll(io.LimitReader(rd, left+1))
	r.read += int64(len(data))
	if int64(len(data)) > left {
		return nil, fmt.Errorf("%s: %w: the input passes the limit of %d bytes in total (--max-input-bytes)", source, ErrTooLarge, r.limit())
	}
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	return data, nil
}
