package portcullis.default_resources_test

import data.portcullis.default_resources

review(spec) := {"request": {
	"kind": {"group": "", "version": "v1", "kind": "Pod"},
	"operation": "CREATE",
	"subResource": "",
	"namespace": "default",
	"object": {"metadata": {"name": "web"}, "spec": spec},
}}

test_defaults_requests_where_unset if {
	default_resources.mutate == {{
		"op": "merge",
		"path": ["spec", "containers", {"name": "app"}, "resources", "requests"],
		"value": {"cpu": "10m", "memory": "32Mi"},
	}} with input as review({"containers": [
		{"name": "app", "image": "nginx:1.27"},
		{"name": "set", "image": "nginx:1.27", "resources": {"requests": {"cpu": "1"}}},
	]})
}

test_configured_requests if {
	default_resources.mutate == {{
		"op": "merge",
		"path": ["spec", "initContainers", {"name": "init"}, "resources", "requests"],
		"value": {"cpu": "50m", "memory": "64Mi"},
	}} with input as review({"initContainers": [{"name": "init", "image": "busybox:1"}], "containers": []})
		with data.portcullis.config.policies.default_resources.requests as {"cpu": "50m", "memory": "64Mi"}
}

test_update_untouched if {
	count(default_resources.mutate) == 0 with input as json.patch(review({"containers": [{"name": "app"}]}), [{"op": "replace", "path": "/request/operation", "value": "UPDATE"}])
}
