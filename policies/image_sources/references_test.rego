package portcullis.image_sources_test

import data.portcullis.image_sources

# Image references and what the container runtime makes of them. The
# expected values were produced by github.com/distribution/reference v0.6.0
# ParseNormalizedNamed (with crypto/sha256 and crypto/sha512 linked, as in
# kubelet and containerd); "tag" is the tag the runtime pulls ("latest" when
# the reference has neither tag nor digest), null marks a reference the
# runtime rejects. An empty registry is upstream's answer for a first
# component that looks like a host but is not a valid one; the policy
# denies such images as not pullable.
reference_cases := [
	{"ref": "nginx", "want": {"registry": "docker.io", "repository": "library/nginx", "tag": "latest", "tagged": false, "digest": ""}},
	{"ref": "nginx:1.27", "want": {"registry": "docker.io", "repository": "library/nginx", "tag": "1.27", "tagged": true, "digest": ""}},
	{"ref": "nginx:latest", "want": {"registry": "docker.io", "repository": "library/nginx", "tag": "latest", "tagged": true, "digest": ""}},
	{"ref": "library/nginx", "want": {"registry": "docker.io", "repository": "library/nginx", "tag": "latest", "tagged": false, "digest": ""}},
	{"ref": "docker.io/nginx", "want": {"registry": "docker.io", "repository": "library/nginx", "tag": "latest", "tagged": false, "digest": ""}},
	{"ref": "docker.io/library/nginx:1.27-alpine", "want": {"registry": "docker.io", "repository": "library/nginx", "tag": "1.27-alpine", "tagged": true, "digest": ""}},
	{"ref": "index.docker.io/nginx", "want": {"registry": "docker.io", "repository": "library/nginx", "tag": "latest", "tagged": false, "digest": ""}},
	{"ref": "index.docker.io/user/app:v1", "want": {"registry": "docker.io", "repository": "user/app", "tag": "v1", "tagged": true, "digest": ""}},
	{"ref": "user/app", "want": {"registry": "docker.io", "repository": "user/app", "tag": "latest", "tagged": false, "digest": ""}},
	{"ref": "user/app:v2.0.1", "want": {"registry": "docker.io", "repository": "user/app", "tag": "v2.0.1", "tagged": true, "digest": ""}},
	{"ref": "user/team/app", "want": {"registry": "docker.io", "repository": "user/team/app", "tag": "latest", "tagged": false, "digest": ""}},
	{"ref": "gcr.io/distroless/static:nonroot", "want": {"registry": "gcr.io", "repository": "distroless/static", "tag": "nonroot", "tagged": true, "digest": ""}},
	{"ref": "gcr.io/project/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "want": {"registry": "gcr.io", "repository": "project/app", "tag": "", "tagged": false, "digest": "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}},
	{"ref": "registry.example.com/team/app:1.0@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "want": {"registry": "registry.example.com", "repository": "team/app", "tag": "1.0", "tagged": true, "digest": "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}},
	{"ref": "nginx@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "want": {"registry": "docker.io", "repository": "library/nginx", "tag": "", "tagged": false, "digest": "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}},
	{"ref": "nginx:1.27@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "want": {"registry": "docker.io", "repository": "library/nginx", "tag": "1.27", "tagged": true, "digest": "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}},
	{"ref": "nginx:latest@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "want": {"registry": "docker.io", "repository": "library/nginx", "tag": "latest", "tagged": true, "digest": "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}},
	{"ref": "localhost/app", "want": {"registry": "localhost", "repository": "app", "tag": "latest", "tagged": false, "digest": ""}},
	{"ref": "localhost:5000/app:dev", "want": {"registry": "localhost:5000", "repository": "app", "tag": "dev", "tagged": true, "digest": ""}},
	{"ref": "localhost:5000", "want": {"registry": "docker.io", "repository": "library/localhost", "tag": "5000", "tagged": true, "digest": ""}},
	{"ref": "registry:5000/app", "want": {"registry": "registry:5000", "repository": "app", "tag": "latest", "tagged": false, "digest": ""}},
	{"ref": "127.0.0.1:5000/ns/app:1", "want": {"registry": "127.0.0.1:5000", "repository": "ns/app", "tag": "1", "tagged": true, "digest": ""}},
	{"ref": "[::1]:5000/app:1", "want": {"registry": "[::1]:5000", "repository": "app", "tag": "1", "tagged": true, "digest": ""}},
	{"ref": "[2001:db8::1]/app", "want": {"registry": "[2001:db8::1]", "repository": "app", "tag": "latest", "tagged": false, "digest": ""}},
	{"ref": "quay.io/prometheus/node-exporter:v1.8.2", "want": {"registry": "quay.io", "repository": "prometheus/node-exporter", "tag": "v1.8.2", "tagged": true, "digest": ""}},
	{"ref": "ghcr.io/org/repo/sub/image:sha-abc123", "want": {"registry": "ghcr.io", "repository": "org/repo/sub/image", "tag": "sha-abc123", "tagged": true, "digest": ""}},
	{"ref": "Foo/bar", "want": {"registry": "Foo", "repository": "bar", "tag": "latest", "tagged": false, "digest": ""}},
	{"ref": "my-registry.local:8443/a/b/c:tag_1", "want": {"registry": "my-registry.local:8443", "repository": "a/b/c", "tag": "tag_1", "tagged": true, "digest": ""}},
	{"ref": "registry.example.com/team-evil/x", "want": {"registry": "registry.example.com", "repository": "team-evil/x", "tag": "latest", "tagged": false, "digest": ""}},
	{"ref": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1.2.3", "want": {"registry": "123456789012.dkr.ecr.eu-west-1.amazonaws.com", "repository": "app", "tag": "1.2.3", "tagged": true, "digest": ""}},
	{"ref": "mcr.microsoft.com/dotnet/aspnet:8.0", "want": {"registry": "mcr.microsoft.com", "repository": "dotnet/aspnet", "tag": "8.0", "tagged": true, "digest": ""}},
	{"ref": "busybox:1.36.1-musl", "want": {"registry": "docker.io", "repository": "library/busybox", "tag": "1.36.1-musl", "tagged": true, "digest": ""}},
	{"ref": "app_name/x.y__z:1", "want": {"registry": "docker.io", "repository": "app_name/x.y__z", "tag": "1", "tagged": true, "digest": ""}},
	{"ref": "a--b/c---d", "want": {"registry": "docker.io", "repository": "a--b/c---d", "tag": "latest", "tagged": false, "digest": ""}},
	{"ref": "example.com/a:Tag.With.dots-and_underscores", "want": {"registry": "example.com", "repository": "a", "tag": "Tag.With.dots-and_underscores", "tagged": true, "digest": ""}},
	{"ref": "example.com/a@sha512:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "want": {"registry": "example.com", "repository": "a", "tag": "", "tagged": false, "digest": "sha512:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}},
	{"ref": "example.com/a@sha384:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "want": {"registry": "example.com", "repository": "a", "tag": "", "tagged": false, "digest": "sha384:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}},
	{"ref": "registry.example.com:443/app", "want": {"registry": "registry.example.com:443", "repository": "app", "tag": "latest", "tagged": false, "digest": ""}},
	{"ref": "UPPER.example.com/app", "want": {"registry": "UPPER.example.com", "repository": "app", "tag": "latest", "tagged": false, "digest": ""}},
	{"ref": "docker.io/library/busybox:1.36@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "want": {"registry": "docker.io", "repository": "library/busybox", "tag": "1.36", "tagged": true, "digest": "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}},
	{"ref": "example.com/a:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "want": {"registry": "example.com", "repository": "a", "tag": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "tagged": true, "digest": ""}},
	{"ref": "", "want": null},
	{"ref": "Nginx", "want": null},
	{"ref": "docker.io/Library/nginx", "want": null},
	{"ref": "nginx:", "want": null},
	{"ref": ":latest", "want": null},
	{"ref": "nginx@sha256:abc", "want": null},
	{"ref": "nginx@sha256:0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF", "want": null},
	{"ref": "nginx@md5:0123456789abcdef0123456789abcdef", "want": null},
	{"ref": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "want": null},
	{"ref": "nginx:-bad", "want": null},
	{"ref": "-nginx", "want": null},
	{"ref": "registry.example.com/app:tag:extra", "want": null},
	{"ref": "my_registry:5000/app", "want": null},
	{"ref": "nginx:1.27 ", "want": null},
	{"ref": "https://registry.example.com/app", "want": null},
	{"ref": "example.com/a:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "want": null},
	{"ref": "a/b/", "want": null},
	{"ref": "registry.example.com/", "want": null},
	{"ref": "nginx@", "want": null},
	{"ref": "a.b_c/x", "want": {"registry": "", "repository": "a.b_c/x", "tag": "latest", "tagged": false, "digest": ""}},
	{"ref": "my_registry.com/app:1", "want": {"registry": "", "repository": "my_registry.com/app", "tag": "1", "tagged": true, "digest": ""}},
	{"ref": "foo_bar.io/x", "want": {"registry": "", "repository": "foo_bar.io/x", "tag": "latest", "tagged": false, "digest": ""}},
	{"ref": "localhost:5000/ns/app:v1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "want": {"registry": "localhost:5000", "repository": "ns/app", "tag": "v1", "tagged": true, "digest": "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}},
	{"ref": "example.com/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "want": {"registry": "example.com", "repository": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "tag": "latest", "tagged": false, "digest": ""}},
	{"ref": "example.com/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "want": null},
	{"ref": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "want": {"registry": "docker.io", "repository": "library/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "tag": "latest", "tagged": false, "digest": ""}},
	{"ref": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "want": null},
	{"ref": "my--reg.example.com/x:1", "want": {"registry": "my--reg.example.com", "repository": "x", "tag": "1", "tagged": true, "digest": ""}},
	{"ref": "-bad.example.com/x", "want": null},
	{"ref": "bad-.example.com/x", "want": null},
	{"ref": "a-b.c-d.io:5000/e--f/g__h/i.j:k", "want": {"registry": "a-b.c-d.io:5000", "repository": "e--f/g__h/i.j", "tag": "k", "tagged": true, "digest": ""}},
]

parsed(ref) := got if {
	got := image_sources.parse_reference(ref)
} else := null

test_reference_table_has_at_least_40_cases if {
	count(reference_cases) >= 40
}

test_reference_normalisation if {
	mismatches := [{"ref": c.ref, "want": c.want, "got": got} |
		some c in reference_cases
		got := parsed(c.ref)
		got != c.want
	]
	print("mismatches:", mismatches)
	mismatches == []
}
