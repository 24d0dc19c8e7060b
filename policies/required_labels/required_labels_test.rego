package portcullis.required_labels_test

import data.portcullis.required_labels

pod(labels) := {"request": {
	"kind": {"group": "", "version": "v1", "kind": "Pod"},
	"operation": "CREATE",
	"subResource": "",
	"namespace": "default",
	"object": {"metadata": {"name": "web", "labels": labels}, "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}},
}}

test_pod_with_label_admitted if {
	count(required_labels.deny) == 0 with input as pod({"app.kubernetes.io/name": "web"})
}

test_pod_without_label_denied if {
	required_labels.deny == {{
		"msg": `Pod "web" is missing required label "app.kubernetes.io/name"`,
		"labels": ["app.kubernetes.io/name"],
	}} with input as pod({})
}

test_configured_labels_plural if {
	required_labels.deny == {{
		"msg": `Pod "web" is missing required labels "owner", "team"`,
		"labels": ["owner", "team"],
	}} with input as pod({"app.kubernetes.io/name": "web"})
		with data.portcullis.config.policies.required_labels.labels as ["team", "owner"]
}

test_deployment_template_labels_checked if {
	deployment := {"request": {
		"kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
		"operation": "CREATE",
		"subResource": "",
		"namespace": "default",
		"object": {
			"metadata": {"name": "api", "labels": {"app.kubernetes.io/name": "api"}},
			"spec": {"template": {"metadata": {"labels": {}}, "spec": {"containers": [{"name": "app", "image": "x:1"}]}}},
		},
	}}
	required_labels.deny == {{
		"msg": `Deployment "api" is missing required label "app.kubernetes.io/name"`,
		"labels": ["app.kubernetes.io/name"],
	}} with input as deployment
}

test_delete_ignored if {
	count(required_labels.deny) == 0 with input as {"request": {
		"kind": {"kind": "Pod"},
		"operation": "DELETE",
		"subResource": "",
		"object": null,
	}}
}
