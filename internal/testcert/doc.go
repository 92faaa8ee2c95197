// Package testcert makes throwaway TLS certificates for tests.
package testcert
