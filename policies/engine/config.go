package engine

import (
	"fmt"
	"sort"

	"sigs.k8s.io/yaml"
)

// Enforcement is what a policy's deny entries do to a request.
type Enforcement string

// Enforcement modes.
const (
	// EnforceDeny rejects the request.
	EnforceDeny Enforcement = "deny"
	// EnforceWarn admits the request and returns the message as a warning.
	EnforceWarn Enforcement = "warn"
	// EnforceAudit admits the request and only records the violation.
	EnforceAudit Enforcement = "audit"
)

// FailureMode is what happens to a request when a policy cannot be evaluated
// (an evaluation error or the deadline passing).
type FailureMode string

// Failure modes.
const (
	// FailDeny rejects the request (the default: a deny policy never silently allows).
	FailDeny FailureMode = "deny"
	// FailAllow admits the request with a warning.
	FailAllow FailureMode = "allow"
)

func parseEnforcement(s string) (Enforcement, error) {
	switch e := Enforcement(s); e {
	case EnforceDeny, EnforceWarn, EnforceAudit:
		return e, nil
	}
	return "", fmt.Errorf("enforcement %q: must be deny, warn or audit", s)
}

func parseFailureMode(s string) (FailureMode, error) {
	switch f := FailureMode(s); f {
	case FailDeny, FailAllow:
		return f, nil
	}
	return "", fmt.Errorf("failure_mode %q: must be deny or allow", s)
}

// parseOptional parses m[key] with parse when the key is present; when it
// is absent it returns the zero value (unset). Config files and METADATA
// share it so both accept and reject the same values.
func parseOptional[T ~string](m map[string]any, key string, parse func(string) (T, error)) (T, error) {
	v, ok := m[key]
	if !ok {
		var zero T
		return zero, nil
	}
	s, _ := v.(string)
	return parse(s)
}

// MergeConfig parses each YAML document in order and deep-merges it over the
// ones before: objects merge key by key, anything else replaces. The result is
// what Rego sees as data.portcullis.config. Empty documents are skipped.
func MergeConfig(docs ...[]byte) (map[string]any, error) {
	merged := map[string]any{}
	for i, doc := range docs {
		if len(doc) == 0 {
			continue
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return nil, fmt.Errorf("config document %d: %w", i, err)
		}
		merged = mergeMaps(merged, m)
	}
	return merged, nil
}

func mergeMaps(dst, src map[string]any) map[string]any {
	for k, sv := range src {
		if sm, ok := sv.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				dst[k] = mergeMaps(dm, sm)
				continue
			}
		}
		dst[k] = sv
	}
	return dst
}

// settings is the part of the configuration the engine itself reads.
type settings struct {
	exemptNamespaces []string
	policies         map[string]policySettings
}

// policySettings are the keys every policy understands under policies.<id>.
type policySettings struct {
	enabled     *bool
	required    *bool
	enforcement Enforcement
	failureMode FailureMode
}

func parseSettings(cfg map[string]any) (settings, error) {
	var s settings
	if raw, ok := cfg["exempt_namespaces"]; ok && raw != nil {
		list, ok := raw.([]any)
		if !ok {
			return s, fmt.Errorf("exempt_namespaces: must be a list of namespace names or globs")
		}
		for _, item := range list {
			ns, ok := item.(string)
			if !ok || ns == "" {
				return s, fmt.Errorf("exempt_namespaces: %v is not a namespace name", item)
			}
			s.exemptNamespaces = append(s.exemptNamespaces, ns)
		}
	}
	s.policies = map[string]policySettings{}
	raw, ok := cfg["policies"]
	if !ok || raw == nil {
		return s, nil
	}
	pols, ok := raw.(map[string]any)
	if !ok {
		return s, fmt.Errorf("policies: must be a map of policy ID to settings")
	}
	ids := make([]string, 0, len(pols))
	for id := range pols {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		var ps policySettings
		m, ok := pols[id].(map[string]any)
		if !ok {
			if pols[id] == nil {
				continue
			}
			return s, fmt.Errorf("policies.%s: must be a map of settings", id)
		}
		if v, ok := m["enabled"]; ok {
			b, ok := v.(bool)
			if !ok {
				return s, fmt.Errorf("policies.%s.enabled: must be true or false", id)
			}
			ps.enabled = &b
		}
		if v, ok := m["required"]; ok {
			b, ok := v.(bool)
			if !ok {
				return s, fmt.Errorf("policies.%s.required: must be true or false", id)
			}
			ps.required = &b
		}
		var err error
		if ps.enforcement, err = parseOptional(m, "enforcement", parseEnforcement); err != nil {
			return s, fmt.Errorf("policies.%s.%w", id, err)
		}
		if ps.failureMode, err = parseOptional(m, "failure_mode", parseFailureMode); err != nil {
			return s, fmt.Errorf("policies.%s.%w", id, err)
		}
		s.policies[id] = ps
	}
	return s, nil
}
