// Package kafka holds statepipe's Kafka plumbing on segmentio/kafka-go — the same client code
// for a real cluster and for the embedded broker — and the embedded broker itself
// (franz-go's kfake, persisted under the data directory and listening on a real port, so
// standard Kafka tools can read it).
//
// It owns connection settings (Config), producer and consumer construction with deliberate
// defaults, and topic creation. It is the only package that imports kafka-go: what it hands
// out and takes in is its own Record (record.go), which cmd/statepipe converts to and from the
// components' record types. It must not know about state messages beyond topic names: it
// imports only schema of the project.
package kafka
