# METADATA
# title: Printer
# description: Prints what it sees (a print() fixture).
# custom:
#   kind: validating
package portcullis.printer

deny contains {"msg": "no team label"} if {
	print("labels of", input.request.object.metadata.name, "are", object.get(input.request.object.metadata, "labels", {}))
	not input.request.object.metadata.labels.team
}
