# METADATA
# title: Required labels
# description: |
#   Workloads and pods must carry the labels listed in
#   policies.required_labels.labels (app.kubernetes.io/name by default), so
#   every running thing can be traced back to what owns it. A workload is
#   checked twice: its own metadata (check_metadata, default true) and its
#   pod template's, which its pods get (check_template, default true); the
#   message says which one lacks the label.
#   Reads: metadata.labels of the object and of its pod template.
# custom:
#   settings:
#     labels: array
#     check_metadata: boolean
#     check_template: boolean
#   kind: validating
#   enforcement: warn
#   resources:
#     - pods
#     - deployments
#     - replicasets
#     - statefulsets
#     - daemonsets
#     - jobs
#     - cronjobs
#     - replicationcontrollers
#     - podtemplates
package portcullis.required_labels

import data.portcullis.lib.kubernetes

settings := kubernetes.policy_config("required_labels")

required := object.get(settings, "labels", ["app.kubernetes.io/name"])

check_metadata := object.get(settings, "check_metadata", true)

check_template := object.get(settings, "check_template", true)

name := object.get(kubernetes.obj.metadata, "name", object.get(kubernetes.obj.metadata, "generateName", ""))

# targets: the label sets checked, each with how the message names it. A Pod
# has only its own; a workload its own and its template's, as configured.
targets contains {"what": sprintf("%s %q", [kubernetes.kind, name]), "labels": labels} if {
	kubernetes.is_pod
	labels := object.get(kubernetes.obj.metadata, "labels", {})
}

targets contains {"what": sprintf("%s %q", [kubernetes.kind, name]), "labels": labels} if {
	kubernetes.is_template
	check_metadata == true
	labels := object.get(kubernetes.obj.metadata, "labels", {})
}

targets contains {"what": sprintf("%s %q template", [kubernetes.kind, name]), "labels": labels} if {
	kubernetes.is_template
	check_template == true
	labels := object.get(kubernetes.obj, array.concat(kubernetes.template_paths[kubernetes.kind], ["metadata", "labels"]), {})
}

# Only new objects are checked.
deny contains {"msg": msg, "labels": missing} if {
	kubernetes.is_create_or_update
	kubernetes.subresource == ""
	some target in targets
	missing := sort([l | some l in required; not target.labels[l]])
	count(missing) > 0
	msg := sprintf("%s is missing required %s %s", [
		target.what,
		kubernetes.pluralize("label", "labels", count(missing)),
		kubernetes.quote(missing),
	])
}
