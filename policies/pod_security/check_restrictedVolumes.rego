package portcullis.pod_security

# restrictedVolumes (restricted; replaces hostPathVolumes): spec.volumes may
# only use configMap, csi, downwardAPI, emptyDir, ephemeral, image,
# persistentVolumeClaim, projected and secret.

# In upstream's order: the first source set names the volume's type.
restricted_volume_sources := [
	"hostPath", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "nfs",
	"iscsi", "glusterfs", "rbd", "flexVolume", "cinder", "cephfs", "flocker",
	"fc", "azureFile", "vsphereVolume", "quobyte", "azureDisk",
	"photonPersistentDisk", "portworxVolume", "scaleIO", "storageos",
]

# The allowed sources as a set: a volume is checked by walking its own few
# keys (its name and its source), not by probing it for each of the nine.
allowed_volume_source_set := {
	"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
	"image", "persistentVolumeClaim", "projected", "secret",
}

_allowed_volumes := {i |
	some i, v in volumes
	some source, value in v
	allowed_volume_source_set[source]
	value != null
}

_volume_type(v) := types[0] if {
	types := [source | some source in restricted_volume_sources; _set(v, source)]
	count(types) > 0
} else := "unknown"

result["restrictedVolumes"] := {
	"reason": "restricted volume types",
	"detail": sprintf("%s %s %s %s %s", [
		pluralize("volume", "volumes", count(bad)),
		join_quote([_get(v, "name", "") | some v in bad]),
		pluralize("uses", "use", count(bad)),
		pluralize("restricted volume type", "restricted volume types", count(types)),
		join_quote(sort(types)),
	]),
} if {
	count(_allowed_volumes) < count(volumes)
	bad := [v | some i, v in volumes; not _allowed_volumes[i]]
	types := {_volume_type(v) | some v in bad}
}
