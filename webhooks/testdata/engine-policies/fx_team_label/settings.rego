package portcullis.fx_team_label

# A second file of the same package, without METADATA: part of the policy.

settings := object.get(data.portcullis.config, ["policies", "fx_team_label"], {})

teams := object.get(settings, "teams", [])
