# METADATA
# title: Image sources
# description: |
#   Containers may only run images from allowed registries and repositories,
#   never from denied ones, and (by default) never by the mutable tag
#   "latest" or without a tag. Optionally images must be pinned by digest,
#   or use imagePullPolicy Always when they are not, per namespace.
#   Reads: spec.{initContainers,containers,ephemeralContainers}[*].image and
#   .imagePullPolicy of Pods (also the pods/ephemeralcontainers subresource)
#   and of the pod templates of workloads; the request namespace.
#   References are normalised like the container runtime does
#   (github.com/distribution/reference ParseNormalizedNamed): "nginx" is
#   docker.io/library/nginx:latest. Allow and deny entries are
#   "registry[/repository-prefix]" and match at path boundaries.
#   Settings: policies.image_sources in config.yaml.
# custom:
#   kind: validating
#   enforcement: deny
#   resources:
#     - pods
#     - pods/ephemeralcontainers
#     - deployments
#     - replicasets
#     - statefulsets
#     - daemonsets
#     - jobs
#     - cronjobs
#     - replicationcontrollers
#     - podtemplates
package portcullis.image_sources

import data.portcullis.lib.kubernetes

# Settings ---------------------------------------------------------------

# The settings a namespace override may replace, with their defaults (the
# same as config.yaml, so the policy behaves alike without it).
defaults := {
	"allowed": [],
	"denied": [],
	"deny_latest": true,
	"deny_untagged": true,
	"require_digest": false,
	"require_pull_always": false,
}

setting_names := {name | some name, _ in defaults}

settings := kubernetes.policy_config("image_sources")

base := object.union(defaults, object.filter(settings, setting_names))

# The request's namespace; the CLI may only have the object's own.
namespace := ns if {
	ns := input.request.namespace
	ns != ""
} else := object.get(kubernetes.obj, ["metadata", "namespace"], "")

matching_overrides := [o |
	some o in object.get(settings, "overrides", [])
	kubernetes.namespace_matches(namespace, object.get(o, "namespaces", []))
]

# effective is the settings for the request's namespace: the first override
# whose namespaces match replaces the keys it sets; the others keep the
# global value.
effective := object.union(base, object.filter(matching_overrides[0], setting_names)) if {
	count(matching_overrides) > 0
} else := base

# Image references ---------------------------------------------------------

# The grammar of github.com/distribution/reference (regexp.go).
_domain_component := `(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])`

_domain := sprintf(`(?:%s(?:\.%s)*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?`, [_domain_component, _domain_component])

_path_component := `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`

_tag := `[\w][\w.-]{0,127}`

# go-digest accepts only the algorithms it knows, with lower-case hex of
# their exact length.
_digest := `sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128}`

# Anchored patterns, each matched on its own part of a reference: plain
# matches are several times cheaper than one pattern with capture groups.
_domain_pattern := sprintf(`^%s$`, [_domain])

_path_pattern := sprintf(`^%s(?:/%s)*$`, [_path_component, _path_component])

_tag_pattern := sprintf(`^%s$`, [_tag])

_digest_pattern := sprintf(`^(?:%s)$`, [_digest])

# _split_domain is splitDockerDomain of distribution/reference: the first
# path component is a registry when it contains "." or ":", is "localhost",
# or has upper-case letters; otherwise the image is on Docker Hub, where
# single-component names live under library/.
_split_domain(ref) := [domain, remainder] if {
	i := indexof(ref, "/")
	i >= 0
	first := substring(ref, 0, i)
	_is_domain(first)
	domain := _hub(first)
	remainder := _official(domain, substring(ref, i + 1, -1))
} else := ["docker.io", _official("docker.io", ref)]

_is_domain(first) if regex.match(`[.:]`, first)

_is_domain("localhost")

_is_domain(first) if lower(first) != first

_hub("index.docker.io") := "docker.io"

_hub(d) := d if d != "index.docker.io"

_official("docker.io", remainder) := concat("", ["library/", remainder]) if {
	not contains(remainder, "/")
}

_official(domain, remainder) := remainder if {
	domain != "docker.io"
}

_official("docker.io", remainder) := remainder if {
	contains(remainder, "/")
}

# parse_reference normalises an image reference as the container runtime
# does and returns {"registry", "repository", "tag", "digest", "tagged"}:
# tag is the tag the runtime uses ("latest" when the reference has neither
# a tag nor a digest, "" when it has only a digest), tagged whether the
# reference spells a tag. Undefined for a reference the runtime rejects.
# Like upstream, a first component that looks like a registry but is not a
# valid host name ("my_registry.com/app") leaves the registry empty.
parse_reference(ref) := result if {
	not regex.match(`^[a-f0-9]{64}$`, ref)
	[name_tag, digest] := _split_digest(ref)
	[name, tag] := _split_tag(name_tag)
	[domain, remainder] := _split_domain(name)
	[registry, repository] := _registry_and_repository(domain, remainder)
	count(repository) <= 255
	result := {
		"registry": registry,
		"repository": repository,
		"tag": _effective_tag(tag, digest),
		"digest": digest,
		"tagged": tag != "",
	}
}

_split_digest(ref) := [substring(ref, 0, i), digest] if {
	i := indexof(ref, "@")
	i >= 0
	digest := substring(ref, i + 1, -1)
	regex.match(_digest_pattern, digest)
}

_split_digest(ref) := [ref, ""] if not contains(ref, "@")

# The tag follows the first ":" of the last path component (path
# components never contain ":"; a registry's port is in the first one).
_split_tag(name_tag) := [substring(name_tag, 0, (count(name_tag) - count(tag)) - 1), tag] if {
	parts := split(name_tag, "/")
	last := parts[count(parts) - 1]
	i := indexof(last, ":")
	i >= 0
	tag := substring(last, i + 1, -1)
	regex.match(_tag_pattern, tag)
}

_split_tag(name_tag) := [name_tag, ""] if {
	parts := split(name_tag, "/")
	not contains(parts[count(parts) - 1], ":")
}

_registry_and_repository(domain, remainder) := [domain, remainder] if {
	regex.match(_domain_pattern, domain)
	regex.match(_path_pattern, remainder)
}

_registry_and_repository(domain, remainder) := ["", name] if {
	not regex.match(_domain_pattern, domain)
	name := concat("/", [domain, remainder])
	regex.match(_path_pattern, name)
}

_effective_tag("", "") := "latest"

_effective_tag(tag, _) := tag if tag != ""

_effective_tag("", digest) := "" if digest != ""

# Allow and deny entries ---------------------------------------------------

# entry_matches is true when the "registry[/repository-prefix]" entry covers
# the parsed reference: same registry (case-insensitive, index.docker.io is
# docker.io), and the repository equals the prefix or lies under it at a
# "/" boundary, so "r.example.com/team" never admits "r.example.com/team-evil".
entry_matches(entry, ref) if {
	[registry, prefix] := _split_entry(entry)
	registry == lower(ref.registry)
	_under(prefix, ref.repository)
}

_split_entry(entry) := [_hub(lower(entry)), ""] if {
	not contains(entry, "/")
}

_split_entry(entry) := [_hub(lower(substring(entry, 0, i))), trim_right(substring(entry, i + 1, -1), "/")] if {
	i := indexof(entry, "/")
	i >= 0
}

_under("", _)

_under(prefix, repository) if prefix == repository

_under(prefix, repository) if {
	prefix != ""
	startswith(repository, concat("", [prefix, "/"]))
}

# Containers ---------------------------------------------------------------

# checked holds the containers this request can change: all of them, or
# only the ephemeral ones through pods/ephemeralcontainers.
checked := kubernetes.containers if {
	kubernetes.is_create_or_update
	kubernetes.subresource == ""
}

checked := [c | some c in kubernetes.containers; c.field == "ephemeralContainers"] if {
	kubernetes.is_create_or_update
	kubernetes.is_pod
	kubernetes.subresource == "ephemeralcontainers"
}

spec_path := "spec" if kubernetes.is_pod

spec_path := concat(".", array.concat(kubernetes.template_paths[kubernetes.kind], ["spec"]))

field_path(c, name) := sprintf("%s.%s[%d].%s", [spec_path, c.field, c.index, name])

# images are the checked containers with their parsed references.
images := [{"c": c, "image": image, "ref": ref} |
	some c in checked
	image := object.get(c.container, "image", "")
	image != ""
	ref := parse_reference(image)
	ref.registry != ""
]

# pullable is true for a valid reference with a registry (upstream accepts
# "my_registry.com/app" with an empty registry, which no runtime can pull).
pullable(image) if parse_reference(image).registry != ""

violation(c, check, field, msg) := {"msg": msg, "check": check, "container": c.name, "field": field}

# Rules ------------------------------------------------------------------

deny contains violation(c, "invalid_reference", field, msg) if {
	some c in checked
	image := object.get(c.container, "image", "")
	image != ""
	not pullable(image)
	field := field_path(c, "image")
	msg := sprintf("container %q image %q is not a valid image reference (%s)", [c.name, image, field])
}

deny contains violation(i.c, "denied_source", field, msg) if {
	some i in images
	denied := [e | some e in effective.denied; entry_matches(e, i.ref)]
	count(denied) > 0
	field := field_path(i.c, "image")
	msg := sprintf("container %q image %q comes from %q, which is denied (%s)", [i.c.name, i.image, denied[0], field])
}

deny contains violation(i.c, "unallowed_source", field, msg) if {
	count(effective.allowed) > 0
	some i in images
	not _allowed(i.ref)
	field := field_path(i.c, "image")
	msg := sprintf("container %q image %q is not from an allowed registry or repository (%s); allowed: %s", [
		i.c.name, i.image, field, kubernetes.quote(effective.allowed),
	])
}

_allowed(ref) if {
	some e in effective.allowed
	entry_matches(e, ref)
}

# A digest pins the image whatever the tag says, so "name:latest@sha256:..."
# is not a use of latest.
deny contains violation(i.c, "latest_tag", field, msg) if {
	effective.deny_latest
	some i in images
	i.ref.tagged
	i.ref.tag == "latest"
	i.ref.digest == ""
	field := field_path(i.c, "image")
	msg := sprintf("container %q image %q uses the mutable tag \"latest\"; pin a version tag or a digest (%s)", [i.c.name, i.image, field])
}

deny contains violation(i.c, "untagged", field, msg) if {
	effective.deny_untagged
	some i in images
	not i.ref.tagged
	i.ref.digest == ""
	field := field_path(i.c, "image")
	msg := sprintf("container %q image %q has neither a tag nor a digest, so it runs \"latest\"; pin a version tag or a digest (%s)", [i.c.name, i.image, field])
}

deny contains violation(i.c, "digest_required", field, msg) if {
	effective.require_digest
	some i in images
	i.ref.digest == ""
	field := field_path(i.c, "image")
	msg := sprintf("container %q image %q must be pinned by digest (name@sha256:...) in namespace %q (%s)", [i.c.name, i.image, namespace, field])
}

# Without a digest every tag is mutable: only imagePullPolicy Always makes
# each start pull what the tag points to now. An unset policy defaults as
# the apiserver does: Always for "latest", IfNotPresent otherwise.
deny contains violation(i.c, "pull_policy", field, msg) if {
	effective.require_pull_always
	some i in images
	i.ref.digest == ""
	policy := pull_policy(i.c.container, i.ref)
	policy != "Always"
	field := field_path(i.c, "imagePullPolicy")
	msg := sprintf("container %q image %q uses a mutable tag, so %s must be \"Always\" (is %q)", [i.c.name, i.image, field, policy])
}

pull_policy(container, _) := container.imagePullPolicy if container.imagePullPolicy != ""

pull_policy(container, ref) := "Always" if {
	object.get(container, "imagePullPolicy", "") == ""
	ref.tag == "latest"
}

pull_policy(container, ref) := "IfNotPresent" if {
	object.get(container, "imagePullPolicy", "") == ""
	ref.tag != "latest"
}
