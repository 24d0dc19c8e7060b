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

deployment(labels, template_labels) := {"request": {
	"kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
	"operation": "CREATE",
	"subResource": "",
	"namespace": "default",
	"object": {
		"metadata": {"name": "api", "labels": labels},
		"spec": {"template": {"metadata": {"labels": template_labels}, "spec": {"containers": [{"name": "app", "image": "x:1"}]}}},
	},
}}

test_deployment_template_missing_label if {
	required_labels.deny == {{
		"msg": `Deployment "api" template is missing required label "app.kubernetes.io/name"`,
		"labels": ["app.kubernetes.io/name"],
	}} with input as deployment({"app.kubernetes.io/name": "api"}, {})
}

test_deployment_metadata_missing_label if {
	required_labels.deny == {{
		"msg": `Deployment "api" is missing required label "app.kubernetes.io/name"`,
		"labels": ["app.kubernetes.io/name"],
	}} with input as deployment({}, {"app.kubernetes.io/name": "api"})
}

test_deployment_both_missing if {
	required_labels.deny == {
		{"msg": `Deployment "api" is missing required label "app.kubernetes.io/name"`, "labels": ["app.kubernetes.io/name"]},
		{"msg": `Deployment "api" template is missing required label "app.kubernetes.io/name"`, "labels": ["app.kubernetes.io/name"]},
	} with input as deployment(null, null)
}

test_deployment_fully_labelled if {
	count(required_labels.deny) == 0 with input as deployment({"app.kubernetes.io/name": "api"}, {"app.kubernetes.io/name": "api"})
}

test_check_metadata_off if {
	count(required_labels.deny) == 0 with input as deployment({}, {"app.kubernetes.io/name": "api"})
		with data.portcullis.config.policies.required_labels.check_metadata as false
}

test_check_template_off if {
	count(required_labels.deny) == 0 with input as deployment({"app.kubernetes.io/name": "api"}, {})
		with data.portcullis.config.policies.required_labels.check_template as false
}

test_cronjob_template_path if {
	required_labels.deny == {{
		"msg": `CronJob "nightly" template is missing required label "app.kubernetes.io/name"`,
		"labels": ["app.kubernetes.io/name"],
	}} with input as {"request": {
		"kind": {"group": "batch", "version": "v1", "kind": "CronJob"},
		"operation": "CREATE",
		"namespace": "default",
		"object": {
			"metadata": {"name": "nightly", "labels": {"app.kubernetes.io/name": "nightly"}},
			"spec": {"jobTemplate": {"spec": {"template": {"metadata": {"labels": {"x": "y"}}, "spec": {"containers": [{"name": "app", "image": "x:1"}]}}}}},
		},
	}}
}

test_delete_ignored if {
	count(required_labels.deny) == 0 with input as {"request": {
		"kind": {"kind": "Pod"},
		"operation": "DELETE",
		"subResource": "",
		"object": null,
	}}
}
