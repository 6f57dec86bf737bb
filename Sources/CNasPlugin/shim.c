/* The plugin ABI header is all this target provides; SwiftPM needs one source file. */
#include "nas_constraint.h"
