package engine

import (
	"container/list"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"hash"
	"slices"
	"strings"
	"sync"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Decision cache defaults: pods of one ReplicaSet are identical at admission
// time, so a scale-up sends the same request many times; a few thousand
// entries cover the bursts, the byte bound keeps large mutated objects from
// pinning memory.
const (
	DefaultCacheEntries = 4096
	DefaultCacheBytes   = 16 << 20
)

// cacheKey identifies everything the policies can read: the namespace's
// labels (input.namespace), the request except its UID (the apiserver gives each call a new one; policies do not decide on
// it), the phase, the evaluation options and the policy set (each registry
// has its own cache, so a reload starts empty). The request's small fields
// are hashed as the API encodes them, so every field, present or future,
// is covered (userInfo, namespace, operation, dryRun, options, oldObject...);
// the raw objects are hashed as received, length-prefixed.
type cacheKey [sha256.Size]byte

// small is smallRequestJSON(req), nsJSON the namespace input (labels) or nil. A RawExtension carrying a Go object instead
// of bytes (never the case for a request read from the wire) is not cached:
// its bytes are not at hand.
func requestKey(phase Phase, req *admissionv1.AdmissionRequest, small, nsJSON []byte, opts Options) (cacheKey, bool) {
	for _, ext := range [...]*runtime.RawExtension{&req.Object, &req.OldObject, &req.Options} {
		if ext.Raw == nil && ext.Object != nil {
			return cacheKey{}, false
		}
	}
	h := sha256.New()
	writeField(h, []byte(phase))
	ids := slices.Clone(opts.Policies)
	slices.Sort(ids)
	writeField(h, []byte(strings.Join(ids, ",")))
	writeField(h, small)
	writeField(h, nsJSON)
	for _, raw := range [...][]byte{req.Object.Raw, req.OldObject.Raw, req.Options.Raw} {
		writeField(h, raw)
	}
	var k cacheKey
	h.Sum(k[:0])
	return k, true
}

// writeField writes a length-prefixed field, so that no two different
// sequences of fields hash the same bytes; nil and empty differ.
func writeField(h hash.Hash, b []byte) {
	var n [9]byte
	if b == nil {
		n[0] = 1
	}
	binary.LittleEndian.PutUint64(n[1:], uint64(len(b)))
	h.Write(n[:])
	h.Write(b)
}

// decisionCache is a bounded LRU of decisions, by entries and by approximate
// bytes. Cached decisions are shared: callers must not modify a Decision.
//
// A decision is stored the second time its key is seen, not the first (a
// "doorkeeper", as in TinyLFU): most requests are unique (every Deployment
// rollout, every ConfigMap), and storing their decisions would keep
// thousands of entries no request ever reads alive for the garbage
// collector to mark, on every cycle. Identical requests (the pods of one
// ReplicaSet) hit from the third on.
type decisionCache struct {
	mu         sync.Mutex
	seen       []uint64 // doorkeeper: fingerprints of recent keys, direct-mapped
	maxEntries int
	maxBytes   int64
	bytes      int64
	order      list.List // front: most recently used; values are *cacheEntry
	byKey      map[cacheKey]*list.Element
}

type cacheEntry struct {
	key  cacheKey
	dec  *Decision
	size int64
}

func newDecisionCache(entries int, maxBytes int64) *decisionCache {
	if entries <= 0 {
		return nil
	}
	if maxBytes <= 0 {
		maxBytes = DefaultCacheBytes
	}
	return &decisionCache{maxEntries: entries, maxBytes: maxBytes, byKey: map[cacheKey]*list.Element{}, seen: make([]uint64, doorkeeperSlots(entries))}
}

// doorkeeperSlots sizes the doorkeeper: twice the entries, a power of two
// (8 bytes each: 64 KiB for the default 4096 entries).
func doorkeeperSlots(entries int) int {
	n := 1024
	for n < 2*entries && n < 1<<20 {
		n <<= 1
	}
	return n
}

// admit reports whether k was seen recently (its decision is then stored),
// and remembers it otherwise. Called with c.mu held. Two keys sharing a slot
// evict each other's fingerprint: a key then waits one more request.
func (c *decisionCache) admit(k cacheKey) bool {
	fp := binary.LittleEndian.Uint64(k[:8]) | 1 // never 0, the empty slot
	slot := binary.LittleEndian.Uint64(k[8:16]) & uint64(len(c.seen)-1)
	if c.seen[slot] == fp {
		return true
	}
	c.seen[slot] = fp
	return false
}

func (c *decisionCache) get(k cacheKey) (*Decision, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[k]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*cacheEntry).dec, true
}

// put stores dec without its Object: the server answers with the patch, and
// the mutated object is most of a mutating decision's memory.
func (c *decisionCache) put(k cacheKey, dec *Decision) {
	if dec.Object != nil {
		trimmed := *dec
		trimmed.Object = nil
		dec = &trimmed
	}
	size := decisionSize(dec)
	if size > c.maxBytes/4 {
		return // one huge decision would flush everything else
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byKey[k]; ok {
		c.order.MoveToFront(el)
		return
	}
	if !c.admit(k) {
		return
	}
	c.byKey[k] = c.order.PushFront(&cacheEntry{key: k, dec: dec, size: size})
	c.bytes += size
	for c.order.Len() > c.maxEntries || c.bytes > c.maxBytes {
		el := c.order.Back()
		e := el.Value.(*cacheEntry)
		c.order.Remove(el)
		delete(c.byKey, e.key)
		c.bytes -= e.size
	}
}

// decisionSize estimates the memory a cached decision holds: its strings,
// and its patch values (decoded JSON trees, several times their JSON size).
func decisionSize(d *Decision) int64 {
	n := 512 + len(d.Object)
	for _, v := range d.Violations {
		n += 64 + len(v.Policy) + len(v.Message) + 128*len(v.Details)
	}
	for _, w := range d.Warnings {
		n += 16 + len(w)
	}
	for _, id := range d.Evaluated {
		n += 16 + len(id)
	}
	if len(d.Patch) > 0 {
		b, _ := json.Marshal(d.Patch)
		n += 64*len(d.Patch) + 4*len(b)
	}
	return int64(n)
}

// cacheable reports whether dec may be served to other requests: not when a
// policy failed (a timeout is not a property of the request) and not when its
// text contains this request's UID, which another request must never see.
func cacheable(dec *Decision, uid string) bool {
	if len(dec.Errors) > 0 {
		return false
	}
	if uid == "" {
		return true
	}
	has := func(s string) bool { return strings.Contains(s, uid) }
	for _, v := range dec.Violations {
		if has(v.Message) {
			return false
		}
		if len(v.Details) > 0 {
			b, err := json.Marshal(v.Details)
			if err != nil || has(string(b)) {
				return false
			}
		}
	}
	for _, w := range dec.Warnings {
		if has(w) {
			return false
		}
	}
	if strings.Contains(string(dec.Object), uid) {
		return false
	}
	if len(dec.Patch) > 0 {
		b, err := json.Marshal(dec.Patch)
		if err != nil || has(string(b)) {
			return false
		}
	}
	return true
}
