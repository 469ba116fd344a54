// Deliberately wrong, never compiled: a file of layer "model" that includes a header of the
// layer "backend" above it. The test layer_check_refuses_upward_include hands it to
// cmake/check_layers.cmake as part of the model layer and expects the one error line.
#include "backend/backend.h"
