package inspect

// Drift is a session's cumulative distance from its intent (AARM R7).
//
// Aggregation: each action's distance is d = 1 - alignment (clamped to
// [0,1]). EMA is the exponential moving average of d with smoothing alpha
// (the first action sets EMA = d), so a run of misaligned actions raises it
// quickly and isolated ones fade; Max is the running maximum of d, so one
// far-off action is never forgotten; N counts the actions aggregated.
type Drift struct {
	EMA float64
	Max float64
	N   int
}

// DefaultDriftAlpha is the EMA smoothing factor used when Update is given
// an alpha outside (0,1].
const DefaultDriftAlpha = 0.3

// Update returns the drift after one more action with the given alignment.
// It does not modify d.
func (d Drift) Update(alignment float64, alpha float64) Drift {
	if !(alpha > 0 && alpha <= 1) {
		alpha = DefaultDriftAlpha
	}
	x := 1 - min(max(alignment, 0), 1)
	if d.N == 0 {
		d.EMA = x
	} else {
		d.EMA = alpha*x + (1-alpha)*d.EMA
	}
	d.Max = max(d.Max, x)
	d.N++
	return d
}

// Signal returns the policy contract's signals.drift map: {ema, max}.
func (d Drift) Signal() map[string]any {
	return map[string]any{"ema": d.EMA, "max": d.Max}
}
