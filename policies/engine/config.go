package engine

import (
	"errors"
	"fmt"
	"sort"
	"strings"

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

// topLevelKeys are the configuration's known top-level keys. A new one is
// one line here (and its documentation in policies/config.yaml).
var topLevelKeys = []string{
	"exempt_namespaces",
	"policies",
	configSandbox,
}

// commonSettings are the keys every policy understands under policies.<id>
// (parsed by parseSettings).
var commonSettings = []string{"enabled", "enforcement", "failure_mode", "required"}

// mergeConfigFiles is MergeConfig over named documents, naming the one that
// does not parse.
func mergeConfigFiles(docs []ConfigFile) (map[string]any, error) {
	merged := map[string]any{}
	for _, doc := range docs {
		m, err := parseConfigFile(doc)
		if err != nil {
			return nil, err
		}
		merged = mergeMaps(merged, m)
	}
	return merged, nil
}

func parseConfigFile(doc ConfigFile) (map[string]any, error) {
	if len(doc.Data) == 0 {
		return nil, nil
	}
	var m map[string]any
	if err := yaml.Unmarshal(doc.Data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", doc.Name, err)
	}
	return m, nil
}

// checkConfig refuses, in each document, keys nothing reads: an unknown
// top-level key, settings for a policy that is not loaded (enabled or not),
// and settings a policy does not declare in its METADATA custom.settings,
// or of the wrong type. A typo would otherwise be a setting silently
// ignored. Policies that declare no settings are not checked beyond the
// common keys' types.
func checkConfig(docs []ConfigFile, policies []*Policy) error {
	byID := map[string]*Policy{}
	ids := make([]string, 0, len(policies))
	for _, p := range policies {
		byID[p.ID] = p
		ids = append(ids, p.ID)
	}
	var errs []string
	for _, doc := range docs {
		m, err := parseConfigFile(doc)
		if err != nil {
			return err
		}
		for _, k := range sortedKeys(m) {
			if !contains(topLevelKeys, k) {
				errs = append(errs, fmt.Sprintf("%s: %s: unknown key%s", doc.Name, k, didYouMean(k, topLevelKeys)))
			}
		}
		pols, _ := m["policies"].(map[string]any) // not a map: parseSettings said so
		for _, id := range sortedKeys(pols) {
			p := byID[id]
			if p == nil {
				errs = append(errs, fmt.Sprintf("%s: policies.%s: no such policy%s", doc.Name, id, didYouMean(id, ids)))
				continue
			}
			settings, _ := pols[id].(map[string]any)
			if p.Settings == nil {
				continue
			}
			for _, k := range sortedKeys(settings) {
				if contains(commonSettings, k) {
					continue
				}
				keyPath := "policies." + id + "." + k
				schema, ok := p.Settings[k]
				if !ok {
					errs = append(errs, fmt.Sprintf("%s: %s: unknown setting of policy %q%s", doc.Name, keyPath, id,
						didYouMean(k, append(sortedKeys(p.Settings), commonSettings...))))
					continue
				}
				errs = append(errs, checkSetting(doc.Name, keyPath, schema, settings[k])...)
			}
		}
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return errors.New(strings.Join(errs, "\n"))
	}
	return nil
}

// Setting types a policy declares in METADATA custom.settings. A nested map
// declares an object with those keys; a list of one map declares an array of
// such objects.
var settingTypes = []string{"any", "array", "boolean", "integer", "number", "object", "string"}

// checkSetting checks value against schema at keyPath.
func checkSetting(file, keyPath string, schema, value any) []string {
	if value == nil {
		return nil // null: unset, the policy's default applies
	}
	switch s := schema.(type) {
	case string:
		if ok := hasType(s, value); !ok {
			return []string{fmt.Sprintf("%s: %s: must be %s %s, got %s", file, keyPath, article(s), s, typeName(value))}
		}
		return nil
	case map[string]any:
		obj, ok := value.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: %s: must be an object, got %s", file, keyPath, typeName(value))}
		}
		var errs []string
		for _, k := range sortedKeys(obj) {
			sub, ok := s[k]
			if !ok {
				errs = append(errs, fmt.Sprintf("%s: %s.%s: unknown setting%s", file, keyPath, k, didYouMean(k, sortedKeys(s))))
				continue
			}
			errs = append(errs, checkSetting(file, keyPath+"."+k, sub, obj[k])...)
		}
		return errs
	case []any:
		list, ok := value.([]any)
		if !ok {
			return []string{fmt.Sprintf("%s: %s: must be an array, got %s", file, keyPath, typeName(value))}
		}
		var errs []string
		for i, item := range list {
			errs = append(errs, checkSetting(file, fmt.Sprintf("%s[%d]", keyPath, i), s[0], item)...)
		}
		return errs
	}
	return nil
}

func hasType(t string, v any) bool {
	switch t {
	case "any":
		return true
	case "array":
		_, ok := v.([]any)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "integer":
		f, ok := v.(float64)
		return ok && f == float64(int64(f))
	case "number":
		_, ok := v.(float64)
		return ok
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	}
	return false
}

func typeName(v any) string {
	switch v.(type) {
	case []any:
		return "an array"
	case bool:
		return "a boolean"
	case float64:
		return "a number"
	case map[string]any:
		return "an object"
	case string:
		return "a string"
	}
	return fmt.Sprintf("%T", v)
}

func article(t string) string {
	if strings.IndexByte("aeiou", t[0]) >= 0 {
		return "an"
	}
	return "a"
}

// parseSettingsSchema validates METADATA custom.settings: a map of setting
// name to a type name, a nested map (an object with those keys) or a list
// of one schema (an array of those).
func parseSettingsSchema(raw any, keyPath string) error {
	switch s := raw.(type) {
	case string:
		if !contains(settingTypes, s) {
			return fmt.Errorf("%s: type %q: must be one of %s%s", keyPath, s, strings.Join(settingTypes, ", "), didYouMean(s, settingTypes))
		}
		return nil
	case map[string]any:
		for _, k := range sortedKeys(s) {
			if err := parseSettingsSchema(s[k], keyPath+"."+k); err != nil {
				return err
			}
		}
		return nil
	case []any:
		if len(s) != 1 {
			return fmt.Errorf("%s: a list declares an array by the schema of its one element", keyPath)
		}
		return parseSettingsSchema(s[0], keyPath+"[]")
	}
	return fmt.Errorf("%s: must be a type name (%s), a map of settings or a list of one", keyPath, strings.Join(settingTypes, ", "))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
