package portcullis.pod_security_test

import data.portcullis.pod_security

apparmor_deny(annotations, spec) := d if {
	d := pod_security.deny with input as review("Pod", {"metadata": {"annotations": annotations}, "spec": spec})
		with data.portcullis.config as config({"level": "baseline"})
}

test_apparmor_allowed_values if {
	annotations := {
		"container.apparmor.security.beta.kubernetes.io/app": "runtime/default",
		"container.apparmor.security.beta.kubernetes.io/side": "localhost/custom",
		"container.apparmor.security.beta.kubernetes.io/init": "",
		"apparmor.example.com/unrelated": "unconfined",
	}
	spec := {
		"securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}},
		"containers": [container("app", {"appArmorProfile": {"type": "Localhost", "localhostProfile": "custom"}}), container("side", {"appArmorProfile": null})],
	}
	count(apparmor_deny(annotations, spec)) == 0
}

test_apparmor_annotation if {
	annotations := {"container.apparmor.security.beta.kubernetes.io/app": "unconfined"}
	apparmor_deny(annotations, baseline_spec) == {violation("appArmorProfile", "baseline", `forbidden AppArmor profile (annotation must not set AppArmor profile type to "container.apparmor.security.beta.kubernetes.io/app="unconfined"")`)}
}

test_apparmor_field if {
	spec := {"containers": [container("app", {"appArmorProfile": {"type": "Unconfined"}})]}
	apparmor_deny({}, spec) == {violation("appArmorProfile", "baseline", `forbidden AppArmor profile (container "app" must not set AppArmor profile type to "Unconfined")`)}
}

test_apparmor_pod_containers_and_annotations if {
	annotations := {
		"container.apparmor.security.beta.kubernetes.io/side": "localhost",
		"container.apparmor.security.beta.kubernetes.io/app": "unconfined",
	}
	spec := {
		"securityContext": {"appArmorProfile": {"type": "Unconfined"}},
		"containers": [container("app", {"appArmorProfile": {"type": "Unconfined"}}), container("side", {"appArmorProfile": {}})],
	}
	apparmor_deny(annotations, spec) == {violation("appArmorProfile", "baseline", `forbidden AppArmor profiles (pod and containers "app", "side" and annotations must not set AppArmor profile type to "", "Unconfined", "container.apparmor.security.beta.kubernetes.io/app="unconfined"", "container.apparmor.security.beta.kubernetes.io/side="localhost"")`)}
}

test_apparmor_annotation_value_quoted_like_go if {
	annotations := {"container.apparmor.security.beta.kubernetes.io/app": "a\"b"}
	apparmor_deny(annotations, baseline_spec) == {violation("appArmorProfile", "baseline", `forbidden AppArmor profile (annotation must not set AppArmor profile type to "container.apparmor.security.beta.kubernetes.io/app="a\"b"")`)}
}
