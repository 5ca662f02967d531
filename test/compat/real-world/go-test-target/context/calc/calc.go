// Package calc evaluates space-separated reverse Polish notation.
package calc

import (
	"fmt"
	"strconv"
	"strings"
)

// Eval evaluates expr, e.g. "3 4 + 2 *".
func Eval(expr string) (float64, error) {
	var st []float64
	for _, tok := range strings.Fields(expr) {
		switch tok {
		case "+", "-", "*", "/":
			if len(st) < 2 {
				return 0, fmt.Errorf("stack underflow at %q", tok)
			}
			a, b := st[len(st)-2], st[len(st)-1]
			st = st[:len(st)-2]
			switch tok {
			case "+":
				st = append(st, a+b)
			case "-":
				st = append(st, a-b)
			case "*":
				st = append(st, a*b)
			case "/":
				if b == 0 {
					return 0, fmt.Errorf("division by zero")
				}
				st = append(st, a/b)
			}
		default:
			v, err := strconv.ParseFloat(tok, 64)
			if err != nil {
				return 0, fmt.Errorf("bad token %q", tok)
			}
			st = append(st, v)
		}
	}
	if len(st) != 1 {
		return 0, fmt.Errorf("%d values left on the stack", len(st))
	}
	return st[0], nil
}
