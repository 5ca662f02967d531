package calc

import "testing"

func TestEval(t *testing.T) {
	cases := map[string]float64{"3 4 +": 7, "3 4 + 2 *": 14, "10 4 /": 2.5, "1 2 3 * -": -5}
	for in, want := range cases {
		got, err := Eval(in)
		if err != nil || got != want {
			t.Errorf("Eval(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}

func TestErrors(t *testing.T) {
	for _, in := range []string{"+", "1 0 /", "1 2", "x"} {
		if _, err := Eval(in); err == nil {
			t.Errorf("Eval(%q): no error", in)
		}
	}
}
