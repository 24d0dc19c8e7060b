package app

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	authnv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// MaxDocumentBytes bounds one YAML or JSON document read by validate.
const MaxDocumentBytes = 8 << 20

// Manifest is one object read from the CLI's input.
type Manifest struct {
	// Source is the file path, or "-" for stdin.
	Source string
	// Index is the document's position in its source (0-based); objects
	// expanded from a List share the List's index and have an Item.
	Index int
	// Item is the position within a List, or -1.
	Item int
	// Object is the object as JSON.
	Object []byte
	// GVK, Name, Namespace are read from the object.
	GVK       schema.GroupVersionKind
	Name      string
	Namespace string
}

// InputError is a manifest that cannot be read, naming where it is.
type InputError struct {
	Source string
	Index  int
	Err    error
}

func (e *InputError) Error() string {
	if e.Index < 0 {
		return fmt.Sprintf("%s: %v", e.Source, e.Err)
	}
	return fmt.Sprintf("%s: document %d: %v", e.Source, e.Index, e.Err)
}

func (e *InputError) Unwrap() error { return e.Err }

// ReadManifests reads every path (files, directories recursively, "-" for
// stdin): multi-document YAML or JSON, with List kinds expanded.
func ReadManifests(paths []string, stdin io.Reader) ([]Manifest, error) {
	var out []Manifest
	var errs []error
	for _, p := range paths {
		if p == "-" {
			ms, err := ReadDocuments("-", stdin)
			out = append(out, ms...)
			if err != nil {
				errs = append(errs, err)
			}
			continue
		}
		files, err := manifestFiles(p)
		if err != nil {
			errs = append(errs, &InputError{Source: p, Index: -1, Err: err})
			continue
		}
		for _, f := range files {
			fh, err := os.Open(f)
			if err != nil {
				errs = append(errs, &InputError{Source: f, Index: -1, Err: err})
				continue
			}
			ms, err := ReadDocuments(f, fh)
			fh.Close()
			out = append(out, ms...)
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	return out, errors.Join(errs...)
}

func manifestFiles(p string) ([]string, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return []string{p}, nil
	}
	var files []string
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != p && strings.HasPrefix(d.Name(), ".") {
				return fs.SkipDir
			}
			return nil
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".yaml", ".yml", ".json":
			files = append(files, path)
		}
		return nil
	})
	sort.Strings(files)
	return files, err
}

// ReadDocuments splits r into YAML/JSON documents and decodes each into
// manifests. Every broken document is reported with its index; the others
// are still returned.
func ReadDocuments(source string, r io.Reader) ([]Manifest, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReaderSize(r, 64<<10))
	var out []Manifest
	var errs []error
	for index := 0; ; index++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			errs = append(errs, &InputError{Source: source, Index: index, Err: fmt.Errorf("read: %w", err)})
			break
		}
		if len(doc) > MaxDocumentBytes {
			errs = append(errs, &InputError{Source: source, Index: index, Err: fmt.Errorf("document larger than %d bytes", MaxDocumentBytes)})
			continue
		}
		if isBlank(doc) {
			index-- // comments or separators only: not a document
			continue
		}
		ms, err := decodeDocument(source, index, doc)
		if err != nil {
			errs = append(errs, &InputError{Source: source, Index: index, Err: err})
			continue
		}
		out = append(out, ms...)
	}
	return out, errors.Join(errs...)
}

func isBlank(doc []byte) bool {
	for _, line := range bytes.Split(doc, []byte("\n")) {
		t := bytes.TrimSpace(line)
		if len(t) > 0 && t[0] != '#' && !bytes.Equal(t, []byte("---")) {
			return false
		}
	}
	return true
}

func decodeDocument(source string, index int, doc []byte) ([]Manifest, error) {
	// sigs.k8s.io/yaml refuses alias bombs and converts YAML to JSON.
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	var obj map[string]any
	if err := json.Unmarshal(js, &obj); err != nil || obj == nil {
		return nil, errors.New("not a Kubernetes object (expected a mapping with apiVersion and kind)")
	}
	m, err := toManifest(source, index, -1, obj)
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(m.GVK.Kind, "List") {
		return []Manifest{m}, nil
	}
	items, ok := obj["items"].([]any)
	if !ok {
		if obj["items"] == nil {
			return nil, nil
		}
		return nil, fmt.Errorf("%s: items must be a list", m.GVK.Kind)
	}
	var out []Manifest
	for i, it := range items {
		io, ok := it.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s item %d: not an object", m.GVK.Kind, i)
		}
		im, err := toManifest(source, index, i, io)
		if err != nil {
			return nil, fmt.Errorf("%s item %d: %w", m.GVK.Kind, i, err)
		}
		out = append(out, im)
	}
	return out, nil
}

func toManifest(source string, index, item int, obj map[string]any) (Manifest, error) {
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	if apiVersion == "" || kind == "" {
		return Manifest{}, errors.New("missing apiVersion or kind")
	}
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return Manifest{}, fmt.Errorf("apiVersion %q: %w", apiVersion, err)
	}
	md, _ := obj["metadata"].(map[string]any)
	name, _ := md["name"].(string)
	if name == "" {
		name, _ = md["generateName"].(string)
	}
	ns, _ := md["namespace"].(string)
	raw, err := json.Marshal(obj)
	if err != nil {
		return Manifest{}, fmt.Errorf("encode object: %w", err)
	}
	return Manifest{Source: source, Index: index, Item: item, Object: raw, GVK: gv.WithKind(kind), Name: name, Namespace: ns}, nil
}

// clusterScoped are the built-in kinds without a namespace.
var clusterScoped = map[string]bool{
	"Namespace": true, "Node": true, "PersistentVolume": true, "ClusterRole": true, "ClusterRoleBinding": true,
	"StorageClass": true, "CustomResourceDefinition": true, "ValidatingWebhookConfiguration": true,
	"MutatingWebhookConfiguration": true, "ValidatingAdmissionPolicy": true, "ValidatingAdmissionPolicyBinding": true,
	"PriorityClass": true, "IngressClass": true, "RuntimeClass": true, "CSIDriver": true, "CSINode": true,
	"APIService": true, "CertificateSigningRequest": true, "VolumeAttachment": true,
}

// ReviewRequest builds the AdmissionRequest the apiserver would send for
// creating m (in namespace defaultNS when the object names none).
func ReviewRequest(m Manifest, defaultNS string) *admissionv1.AdmissionRequest {
	ns := m.Namespace
	if clusterScoped[m.GVK.Kind] {
		ns = ""
	} else if ns == "" {
		ns = defaultNS
	}
	plural, _ := meta.UnsafeGuessKindToResource(m.GVK)
	gvk := metav1.GroupVersionKind{Group: m.GVK.Group, Version: m.GVK.Version, Kind: m.GVK.Kind}
	gvr := metav1.GroupVersionResource{Group: plural.Group, Version: plural.Version, Resource: plural.Resource}
	obj := m.Object
	if ns != "" && m.Namespace == "" {
		// The apiserver defaults metadata.namespace from the request path.
		obj = withNamespace(obj, ns)
	}
	dryRun := true
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%d/%d", m.Source, m.Index, m.Item)))
	return &admissionv1.AdmissionRequest{
		UID:             types.UID("portcullis-validate-" + hex.EncodeToString(sum[:8])),
		Kind:            gvk,
		Resource:        gvr,
		RequestKind:     &gvk,
		RequestResource: &gvr,
		Name:            m.Name,
		Namespace:       ns,
		Operation:       admissionv1.Create,
		UserInfo:        authnv1.UserInfo{Username: "portcullis-validate"},
		Object:          runtime.RawExtension{Raw: obj},
		DryRun:          &dryRun,
		Options:         runtime.RawExtension{Raw: []byte(`{"kind":"CreateOptions","apiVersion":"meta.k8s.io/v1"}`)},
	}
}

func withNamespace(raw []byte, ns string) []byte {
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		return raw
	}
	md, _ := obj["metadata"].(map[string]any)
	if md == nil {
		md = map[string]any{}
		obj["metadata"] = md
	}
	md["namespace"] = ns
	out, err := json.Marshal(obj)
	if err != nil {
		return raw
	}
	return out
}
