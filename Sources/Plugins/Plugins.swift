// Module Plugins: constraints added without rebuilding the tool.
//
// It owns the dlopen loader of constraint plugins (`ConstraintPlugin`: checks the ABI's version and struct size
// before trusting the layout, reads errors from a status and message buffer, never lets a Swift error cross into
// C) and the registry that names constraint kinds, built-in and loaded (`ConstraintRegistry`). The ABI itself is
// the C header `plugins/include/nas_constraint.h`; shipped plugins and the template live in `plugins/`.
// It depends on Constraints only.
