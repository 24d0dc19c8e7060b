package audit

// DefaultUser is the userInfo.username of audit requests: who created an
// object is not recorded in it, so rules on the requesting user (exemptions
// by username) see this name, which no exemption lists unless on purpose.
const DefaultUser = "portcullis-audit"
