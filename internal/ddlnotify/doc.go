// Package ddlnotify holds what pgveil and a DBA share to report DDL at
// once: the channel pgveil listens on upstream, and the event trigger
// that notifies it (configs/README.md, "DDL while pgveil runs"). It
// imports nothing, so that cmd/pgveil-demo, which must build without
// cgo, installs the same trigger as the documentation gives.
package ddlnotify
