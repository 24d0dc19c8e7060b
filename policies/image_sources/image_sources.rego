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
#   settings:
#     allowed: array
#     denied: array
#     deny_latest: boolean
#     deny_untagged: boolean
#     require_digest: boolean
#     require_pull_always: boolean
#     overrides:
#       - namespaces: array
#         allowed: array
#         denied: array
#         deny_latest: boolean
#         deny_untagged: boolean
#         require_digest: boolean
#         require_pull_always: boolean
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

# The keys of defaults, spelled out: a comprehension would be rebuilt on
# every request.
setting_names := {"allowed", "denied", "deny_latest", "deny_untagged", "require_digest", "require_pull_always"}

# Read directly (kubernetes.policy_config reads the same): a rule reference
# is cheaper than a function call, and this runs on every request.
settings := s if {
	s := data.portcullis.config.policies.image_sources
} else := {}

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

# The grammar of github.com/distribution/reference (regexp.go), spelled out
# as literal, anchored patterns without capture groups (literals cost
# nothing to build on each evaluation; plain matches are several times
# cheaper than matches with captures):
#   domain-component := [a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
#                       (written [a-zA-Z0-9]+(-+[a-zA-Z0-9]+)*: the same
#                       strings, with less backtracking)
#   domain           := (domain-component ("." domain-component)* | "[" ipv6 "]") (":" port)?
#   path-component   := [a-z0-9]+ (("." | "_" | "__" | "-"+) [a-z0-9]+)*
#   tag              := [\w][\w.-]{0,127}
# go-digest accepts only the algorithms it knows, with lower-case hex of
# their exact length. _domain_pattern is a registry on its own.
_domain_pattern := `^(?:[a-zA-Z0-9]+(?:-+[a-zA-Z0-9]+)*(?:\.[a-zA-Z0-9]+(?:-+[a-zA-Z0-9]+)*)*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$`

# The whole reference as a user may write it: an optional registry, the
# path, an optional tag and an optional digest. Which first component is a
# registry is decided afterwards, as upstream does.
_reference_pattern := `^(?:(?:[a-zA-Z0-9]+(?:-+[a-zA-Z0-9]+)*(?:\.[a-zA-Z0-9]+(?:-+[a-zA-Z0-9]+)*)*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@(?:sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128}))?$`

# parse_reference normalises an image reference as the container runtime
# does (ParseNormalizedNamed of github.com/distribution/reference) and
# returns {"registry", "repository", "tag", "digest", "tagged"}: tag is the
# tag the runtime uses ("latest" when the reference has neither a tag nor a
# digest, "" when it has only a digest), tagged whether the reference spells
# a tag. Undefined for a reference the runtime rejects. Like upstream, a
# first component that looks like a registry but is not a valid host name
# ("my_registry.com/app") leaves the registry empty.
#
# One match validates the whole reference; plain string operations then
# take it apart. (Written flat: on a large pod, parsing is most of this
# policy's cost, and each helper function call costs about as much as a
# dozen expressions.)
parse_reference(ref) := result if {
	not regex.match(`^[a-f0-9]{64}$`, ref)
	regex.match(_reference_pattern, ref)

	# The digest follows "@"; the tag follows ":" in the last path component
	# (a registry's port is in the first one, and the pattern allows no
	# other ":").
	at := split(ref, "@")
	digest := concat("", array.slice(at, 1, 2))
	parts := split(at[0], "/")
	tag := concat("", array.slice(split(parts[count(parts) - 1], ":"), 1, 2))
	name := trim_suffix(at[0], concat(":", ["", tag]))

	[registry, repository] := _locate(parts, name)
	count(repository) <= 255
	result := {
		"registry": registry,
		"repository": repository,
		"tag": _effective_tag(tag, digest),
		"digest": digest,
		"tagged": tag != "",
	}
}

# _locate is splitDockerDomain of distribution/reference: the first of
# several path components is a registry when it contains "." or ":", is
# "localhost", or has upper-case letters (index.docker.io is docker.io);
# otherwise the image is on Docker Hub. A registry-like first component
# that is not a valid host is left in the path, with no registry.
_locate(parts, name) := [registry, _official(registry, substring(name, count(parts[0]) + 1, -1))] if {
	count(parts) > 1
	regex.match(`[.:A-Z]|^localhost$`, parts[0])
	regex.match(_domain_pattern, parts[0])
	registry := object.get({"index.docker.io": "docker.io"}, parts[0], parts[0]) # _hub, inlined
} else := ["", name] if {
	count(parts) > 1
	regex.match(`[.:A-Z]|^localhost$`, parts[0])
} else := ["docker.io", _official("docker.io", name)]

# On Docker Hub, single-component names live under library/.
_official(registry, repository) := concat("/", ["library", repository]) if {
	registry == "docker.io"
	not contains(repository, "/")
} else := repository

_effective_tag("", "") := "latest"

_effective_tag(tag, _) := tag if tag != ""

_effective_tag("", digest) := "" if digest != ""

# Allow and deny entries ---------------------------------------------------

# The configured "registry[/repository-prefix]" entries, split once per
# evaluation rather than once per image.
allowed_entries := [_split_entry(e) | some e in effective.allowed]

denied_entries := [_split_entry(e) | some e in effective.denied]

# _covers is true when the split entry covers the parsed reference: same
# registry (case-insensitive, index.docker.io is docker.io), and the
# repository equals the prefix or lies under it at a "/" boundary, so
# "r.example.com/team" never admits "r.example.com/team-evil".
_covers(entry, ref) if {
	entry.registry == lower(ref.registry)
	_under(entry.prefix, ref.repository)
}

# _hub names Docker Hub by one name.
_hub(registry) := object.get({"index.docker.io": "docker.io"}, registry, registry)

_split_entry(entry) := {"entry": entry, "registry": _hub(lower(entry)), "prefix": ""} if {
	not contains(entry, "/")
}

_split_entry(entry) := {
	"entry": entry,
	"registry": _hub(lower(substring(entry, 0, i))),
	"prefix": trim_right(substring(entry, i + 1, -1), "/"),
} if {
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

# with_image are the checked containers that name an image (the API
# rejects the others), each with it.
with_image := [{"c": c, "image": image} |
	some c in checked
	image := object.get(c.container, "image", "")
	image != ""
]

# references maps each distinct image to its parsed reference, leaving out
# references that do not parse and those without a registry (upstream
# accepts "my_registry.com/app" with an empty registry, which no runtime can
# pull). Parsing once per image, not once per rule, is most of this
# policy's cost on a large pod.
references := {image: ref |
	some image in image_set
	ref := parse_reference(image)
	ref.registry != ""
}

# image_set holds the distinct images of the checked containers.
image_set := {i.image | some i in with_image}

# images are the checked containers with valid references.
images := [{"c": i.c, "image": i.image, "ref": ref} |
	some i in with_image
	ref := references[i.image]
]

violation(c, check, field, msg) := {"msg": msg, "check": check, "container": c.name, "field": field}

# Rules ------------------------------------------------------------------

# Only when some image did not make it into references (a passing pod
# pays two counts, not a negation per container).
deny contains violation(i.c, "invalid_reference", field, msg) if {
	count(references) < count(image_set)
	some i in with_image
	not references[i.image]
	field := field_path(i.c, "image")
	msg := sprintf("container %q image %q is not a valid image reference (%s)", [i.c.name, shown(i.image), field])
}

# shown is an image reference as messages may quote it: credentials
# written into it (user:password@registry/app, never valid, so only invalid
# references can carry them) become REDACTED@. The engine redacts every
# message the same way; this keeps stock OPA's output clean too.
shown(image) := regex.replace(image, `^[^/@:]+:[^/@]*@`, "REDACTED@")

deny contains violation(i.c, "denied_source", field, msg) if {
	count(denied_entries) > 0
	some i in images
	denied := [e.entry | some e in denied_entries; _covers(e, i.ref)]
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
	some e in allowed_entries
	_covers(e, ref)
}

# A digest pins the image whatever the tag says, so "name:latest@sha256:..."
# is not a use of latest.
#
# The latest and untagged rules test each distinct reference first and
# only then look for the containers that use it: a passing pod costs a few
# expressions per image, not per container and rule.
deny contains violation(i.c, "latest_tag", field, msg) if {
	effective.deny_latest
	some image, ref in references
	ref.tagged
	ref.tag == "latest"
	ref.digest == ""
	some i in with_image
	i.image == image
	field := field_path(i.c, "image")
	msg := sprintf("container %q image %q uses the mutable tag \"latest\"; pin a version tag or a digest (%s)", [i.c.name, i.image, field])
}

deny contains violation(i.c, "untagged", field, msg) if {
	effective.deny_untagged
	some image, ref in references
	not ref.tagged
	ref.digest == ""
	some i in with_image
	i.image == image
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
