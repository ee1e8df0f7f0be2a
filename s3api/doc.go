// Package s3api serves the quarantine as one S3 bucket, so that operators
// back it up and restore it with rclone, the aws cli or any S3 SDK. It is
// built only on lazaret.Quarantine, so it serves a local node or, through
// the gRPC client, a remote one, with the whole cluster's content.
//
// Every request is authenticated with AWS Signature Version 4 (header or
// presigned URL; UNSIGNED-PAYLOAD, a signed SHA-256, signed aws-chunked
// streaming and the unsigned-trailer form), by access keys with a read or
// readwrite role (keys.go). Message bodies are YYYY/MM/DD/<id>.eml (the
// received date, UTC) with a JSON sidecar YYYY/MM/DD/<id>.json carrying
// the full metadata and history (objects.go); putting both back restores
// the message with its id (restore.go). Listing (list.go) is in key order
// with stable continuation.
package s3api
