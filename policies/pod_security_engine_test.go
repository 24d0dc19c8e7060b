package policies_test

import (
	"slices"
	"testing"

	"github.com/portcullis/portcullis/policies/engine"
)

// TestPodSecurityThroughEngine checks the policy end to end through the
// engine: its METADATA resources pre-filter, enforcement and how deny and
// warn entries become the decision, with exact messages.
func TestPodSecurityThroughEngine(t *testing.T) {
	privileged := map[string]any{
		"metadata": map[string]any{"name": "web"},
		"spec": map[string]any{"containers": []any{map[string]any{
			"name": "app", "image": "registry.example/app:1",
			"securityContext": map[string]any{"privileged": true},
		}}},
	}
	const privilegedMsg = `privileged (container "app" must not set securityContext.privileged=true)`
	withRequest := func(review map[string]any, fields map[string]any) map[string]any {
		req := review["request"].(map[string]any)
		for k, v := range fields {
			req[k] = v
		}
		return review
	}

	tests := []struct {
		name         string
		config       string
		review       map[string]any
		wantAllowed  bool
		wantDeny     []psViolation
		wantWarnings []string
	}{
		{
			name:        "privileged pod denied at baseline",
			config:      "policies: {pod_security: {level: baseline}}",
			review:      admissionReview("Pod", "default", privileged),
			wantAllowed: false,
			wantDeny:    []psViolation{{Msg: privilegedMsg, Check: "privileged", Level: "baseline", Enforcement: engine.EnforceDeny}},
		},
		{
			name:        "deployment template denied by default",
			config:      "policies: {pod_security: {level: baseline}}",
			review:      admissionReview("Deployment", "default", workloadKinds["Deployment"].wrap(privileged)),
			wantAllowed: false,
			wantDeny:    []psViolation{{Msg: privilegedMsg, Check: "privileged", Level: "baseline", Enforcement: engine.EnforceDeny}},
		},
		{
			name:         "cronjob template only warned in templates warn mode",
			config:       "policies: {pod_security: {level: baseline, templates: warn}}",
			review:       admissionReview("CronJob", "default", workloadKinds["CronJob"].wrap(privileged)),
			wantAllowed:  true,
			wantWarnings: []string{"pod_security: " + privilegedMsg},
		},
		{
			name:         "enforcement warn from config admits with warnings",
			config:       "policies: {pod_security: {level: baseline, enforcement: warn}}",
			review:       admissionReview("Pod", "default", privileged),
			wantAllowed:  true,
			wantDeny:     []psViolation{{Msg: privilegedMsg, Check: "privileged", Level: "baseline", Enforcement: engine.EnforceWarn}},
			wantWarnings: []string{"pod_security: " + privilegedMsg},
		},
		{
			name:   "ephemeral containers subresource evaluated",
			config: "policies: {pod_security: {level: baseline}}",
			review: withRequest(admissionReview("Pod", "default", privileged), map[string]any{
				"operation":   "UPDATE",
				"subResource": "ephemeralcontainers",
			}),
			wantAllowed: false,
			wantDeny:    []psViolation{{Msg: privilegedMsg, Check: "privileged", Level: "baseline", Enforcement: engine.EnforceDeny}},
		},
		{
			name:   "status subresource ignored",
			config: "policies: {pod_security: {level: baseline}}",
			review: withRequest(admissionReview("Pod", "default", privileged), map[string]any{
				"operation":   "UPDATE",
				"subResource": "status",
				"oldObject":   privileged,
			}),
			wantAllowed: true,
		},
		{
			name:        "namespace level privileged",
			config:      "policies: {pod_security: {namespace_levels: {'legacy-*': privileged}}}",
			review:      admissionReview("Pod", "legacy-billing", privileged),
			wantAllowed: true,
		},
		{
			name:        "exempt user",
			config:      "policies: {pod_security: {exemptions: {usernames: [alice]}}}",
			review:      admissionReview("Pod", "default", privileged),
			wantAllowed: true,
		},
		{
			name:         "unknown level enforces restricted and warns",
			config:       "policies: {pod_security: {level: strict}}",
			review:       admissionReview("Pod", "default", privileged),
			wantAllowed:  false,
			wantWarnings: []string{`pod_security: unknown level "strict" in configuration, enforcing "restricted"`},
			wantDeny: []psViolation{
				{Msg: `allowPrivilegeEscalation != false (container "app" must set securityContext.allowPrivilegeEscalation=false)`, Check: "allowPrivilegeEscalation", Level: "restricted", Enforcement: engine.EnforceDeny},
				{Msg: `unrestricted capabilities (container "app" must set securityContext.capabilities.drop=["ALL"])`, Check: "capabilities_restricted", Level: "restricted", Enforcement: engine.EnforceDeny},
				{Msg: privilegedMsg, Check: "privileged", Level: "baseline", Enforcement: engine.EnforceDeny},
				{Msg: `runAsNonRoot != true (pod or container "app" must set securityContext.runAsNonRoot=true)`, Check: "runAsNonRoot", Level: "restricted", Enforcement: engine.EnforceDeny},
				{Msg: `seccompProfile (pod or container "app" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")`, Check: "seccompProfile_restricted", Level: "restricted", Enforcement: engine.EnforceDeny},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newPodSecurityPolicy(t, tt.config).eval(t, tt.review)
			if d.Allowed != tt.wantAllowed {
				t.Errorf("allowed = %v, want %v", d.Allowed, tt.wantAllowed)
			}
			if !slices.Equal(d.Deny, tt.wantDeny) {
				t.Errorf("violations:\n got %+v\nwant %+v", d.Deny, tt.wantDeny)
			}
			if !slices.Equal(d.Warnings, tt.wantWarnings) {
				t.Errorf("warnings:\n got %q\nwant %q", d.Warnings, tt.wantWarnings)
			}
		})
	}
}
