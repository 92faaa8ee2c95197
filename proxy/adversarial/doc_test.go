// Package adversarial_test is the red teams' suite against pgveil: the
// attack corpora (a marker of a hidden row or a masked column must never
// reach the client, by any row, column name, notice, error or COPY byte),
// each red team's and review's policy of its own, and the differential
// tests (TestDiffsmith, TestDifferential) that run generated statements
// through pgveil and compare them with what the user may see natively,
// and the bounds a hostile volume meets (statement bytes a pooled
// backend holds, the audit queue, audited parameters).
//
// It is a test binary of its own, beside the proxy package's, so that
// each runs under go test's ten-minute alarm with the race detector;
// both share proxy/internal/proxytest.
package adversarial_test
