package config

import (
	"fmt"
	"strings"
)

// diffContext is how many unchanged lines a hunk shows around each change.
const diffContext = 3

// maxDiffCells bounds the work of Diff (lines of old × lines of new): configurations are a
// few hundred lines; anything far bigger is summarised rather than compared.
const maxDiffCells = 4 << 20

// Diff returns a unified diff of two versions of a configuration file, named oldName and
// newName in its header, or "" when they are equal. It is what the audit trail and the web UI
// show for a change, so it favours a readable result over a minimal one on huge inputs.
func Diff(oldName, newName string, old, new []byte) string {
	a, b := splitLines(string(old)), splitLines(string(new))
	if slicesEqual(a, b) {
		return ""
	}
	if len(a)*len(b) > maxDiffCells {
		return fmt.Sprintf("--- %s\n+++ %s\n(%d lines → %d lines: too large to compare line by line)\n", oldName, newName, len(a), len(b))
	}
	ops := lineOps(a, b)
	var sb strings.Builder
	fmt.Fprintf(&sb, "--- %s\n+++ %s\n", oldName, newName)
	// Walk the edit script, cutting it into hunks of changes with their context.
	for i := 0; i < len(ops); {
		if ops[i].kind == ' ' {
			i++
			continue
		}
		start := max(0, i-diffContext)
		end := i
		for end < len(ops) {
			if ops[end].kind != ' ' {
				end++
				continue
			}
			run := end
			for run < len(ops) && ops[run].kind == ' ' {
				run++
			}
			if run == len(ops) || run-end > 2*diffContext {
				end = min(end+diffContext, len(ops))
				break
			}
			end = run
		}
		h := ops[start:end]
		oldStart, newStart, oldN, newN := h[0].a+1, h[0].b+1, 0, 0
		for _, op := range h {
			if op.kind != '+' {
				oldN++
			}
			if op.kind != '-' {
				newN++
			}
		}
		if oldN == 0 {
			oldStart--
		}
		if newN == 0 {
			newStart--
		}
		fmt.Fprintf(&sb, "@@ -%d,%d +%d,%d @@\n", oldStart, oldN, newStart, newN)
		for _, op := range h {
			sb.WriteByte(op.kind)
			sb.WriteString(op.text)
			sb.WriteByte('\n')
		}
		i = end
	}
	return sb.String()
}

// lineOp is one line of an edit script: ' ' kept, '-' removed from a, '+' added from b.
// a and b are the line's position (or the next line's) in each input.
type lineOp struct {
	kind byte
	text string
	a, b int
}

// lineOps is a shortest edit script from a to b, by the longest common subsequence.
func lineOps(a, b []string) []lineOp {
	n, m := len(a), len(b)
	// lcs[i][j] is the LCS length of a[i:] and b[j:], in one flat slice.
	lcs := make([]int32, (n+1)*(m+1))
	at := func(i, j int) *int32 { return &lcs[i*(m+1)+j] }
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				*at(i, j) = *at(i+1, j+1) + 1
			} else {
				*at(i, j) = max(*at(i+1, j), *at(i, j+1))
			}
		}
	}
	var ops []lineOp
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			ops = append(ops, lineOp{' ', a[i], i, j})
			i, j = i+1, j+1
		case i < n && (j == m || *at(i+1, j) >= *at(i, j+1)):
			ops = append(ops, lineOp{'-', a[i], i, j}) // removals before additions, as diff(1)
			i++
		default:
			ops = append(ops, lineOp{'+', b[j], i, j})
			j++
		}
	}
	return ops
}

func splitLines(s string) []string {
	s = strings.TrimSuffix(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
