package maestro

import "errors"

// ErrStaleGeneration means the stored work was built from a newer
// generation of the resource than the one being applied. It is not a
// failure to retry: the newer state already won.
var ErrStaleGeneration = errors.New("stored work is at a newer resource generation")
