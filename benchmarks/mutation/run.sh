#!/usr/bin/env bash
# Mutation test of the code that computes bounds, entropies, KLs and likelihoods (see README.md).
#
#   benchmarks/mutation/run.sh                  # every mutant of FUNCTIONS, the test selection TESTS
#   benchmarks/mutation/run.sh --baseline       # the same without the tests added with it
#   benchmarks/mutation/run.sh [--baseline] 'sklearn_ibvi.entropy.x_log_prior*' ...
#                                               # only the mutants matching these name patterns
#
# The run happens in a scratch copy (benchmarks/mutation/work*/, git-ignored) so that mutmut's
# `mutants/` folder and its setup.cfg never touch the repository. One worker process.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

TESTS=(
  tests/test_entropy.py
  tests/test_linear_gaussian_bound.py
  tests/test_variational.py
  tests/test_entropy_sgd.py
  tests/test_ibvi.py
)
NEW_TESTS=(tests/test_bound_replay.py tests/test_bound_terms.py)  # added with the mutation run
if [[ "${1:-}" == "--baseline" ]]; then
  shift
  work="$here/work-baseline"
else
  TESTS+=("${NEW_TESTS[@]}")
  work="$here/work"
fi

# The functions that compute a bound or one of its terms, as mutmut mutant-name patterns
# (module path, then x_<function> or xǁ<Class>ǁ<method>). Left out: the validity monitor's power
# iteration and the probes' bit unpacking (tested on their own, not terms of the bound), IBVI's
# training step (the bound is of whatever q training reaches), and the reparametrized draw
# (tested by the sampling tests).
FUNCTIONS=(
  'sklearn_ibvi.entropy.x_gaussian_entropy*'
  'sklearn_ibvi.entropy.x_log_prior*'
  'sklearn_ibvi.entropy.x_exact_entropy_change*'
  'sklearn_ibvi.entropy.x_quadratic_entropy_change_bound*'
  'sklearn_ibvi.entropy.x_stochastic_entropy_change*'
  'sklearn_ibvi.entropy.x_warp_gradient*'
  'sklearn_ibvi.entropy.x_warped_stochastic_entropy_change*'
  'sklearn_ibvi.likelihoods.*'
  'sklearn_ibvi.variational.x_covariance_matrix*'
  'sklearn_ibvi.variational.x__diag_plus_lowrank_cholesky*'
  'sklearn_ibvi.variational.x__log_det_diag_plus_lowrank*'
  'sklearn_ibvi.variational.x__trace_precision_times_covariance*'
  'sklearn_ibvi.variational.x__mahalanobis_sq*'
  'sklearn_ibvi.variational.x__kl_dense*'
  'sklearn_ibvi.variational.x__is_singular_lowrank*'
  'sklearn_ibvi.variational.x__has_zero_variance*'
  'sklearn_ibvi.variational.x_log_det_covariance*'
  'sklearn_ibvi.variational.x_entropy*'
  'sklearn_ibvi.variational.x_kl_divergence*'
  'sklearn_ibvi.entropy_sgd.xǁEntropySGDNetǁinitialize_module*'
  'sklearn_ibvi.entropy_sgd.xǁEntropySGDNetǁtrain_step*'
  'sklearn_ibvi.entropy_sgd.xǁEntropySGDNetǁ_lr*'
  'sklearn_ibvi.entropy_sgd.xǁEntropySGDNetǁ_stochastic_change*'
  'sklearn_ibvi.entropy_sgd.xǁEntropySGDNetǁ_exact_change*'
  'sklearn_ibvi.entropy_sgd.xǁEntropySGDNetǁ_chain_hessians*'
  'sklearn_ibvi.entropy_sgd.xǁEntropySGDNetǁchain_log_likelihood*'
  'sklearn_ibvi.entropy_sgd.xǁEntropySGDNetǁchain_bound_offsets*'
  'sklearn_ibvi.entropy_sgd.xǁEntropySGDNetǁon_epoch_end*'
  'sklearn_ibvi.entropy_sgd.xǁ_EntropySGDEstimatorǁ_log_marginal_likelihood_bound*'
  'sklearn_ibvi.ibvi.xǁIBVINetǁsampled_log_likelihood*'
  'sklearn_ibvi.ibvi.xǁIBVINetǁkl_divergence*'
  'sklearn_ibvi.ibvi.xǁIBVINetǁevidence_lower_bound*'
  'sklearn_ibvi.ibvi.xǁIBVINetǁon_epoch_end*'
  'sklearn_ibvi.ibvi.xǁ_IBVIEstimatorǁ_log_marginal_likelihood_bound*'
)
if [[ $# -gt 0 ]]; then
  FUNCTIONS=("$@")
fi

rm -rf "$work"
mkdir -p "$work"
cp -r "$root/sklearn_ibvi" "$root/tests" "$root/pyproject.toml" "$work/"
find "$work" -name __pycache__ -prune -exec rm -rf {} +
{
  echo "[mutmut]"
  echo "source_paths = sklearn_ibvi"
  printf 'only_mutate =\n'
  for f in entropy likelihoods variational entropy_sgd ibvi; do echo "    sklearn_ibvi/$f.py"; done
  printf 'pytest_add_cli_args_test_selection =\n'
  for t in "${TESTS[@]}"; do echo "    $t"; done
  # These two check that a warning points at the caller's line; mutmut's trampolines add a
  # stack frame, so they fail under mutmut whatever the mutant.
  printf 'pytest_add_cli_args =\n'
  for t in tests/test_entropy_sgd.py::test_step_size_beyond_the_quadratic_bound_regime_warns \
           tests/test_ibvi.py::test_collapse_to_a_constant_prediction_is_reported_not_silent; do
    printf '    --deselect\n    %s\n' "$t"
  done
  # The wording of error and warning messages is not what this run is about: lines that are only
  # a message string (or a one-line raise with its message) are left unmutated.
  printf 'do_not_mutate_patterns =\n'
  printf '    %s\n' '^\s*(f|rf|r)?"[^"]* [^"]*"\)?,?\s*$' 'raise \w+\(f?"'
  # torch is not fork-safe after use: fork each mutant from a server that has only imported.
  echo "process_isolation = forkserver"
  # A mutant's wall-clock limit is (its tests' clean time + timeout_constant) × timeout_multiplier:
  # generous, because the machine is shared and a slow start must not pass for a timeout.
  echo "timeout_multiplier = 5.0"
  echo "timeout_constant = 10.0"
} > "$work/setup.cfg"

cd "$work"
unset PYTHONPATH  # the mutated copy under mutants/ must be the sklearn_ibvi that tests import
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mutmut run --max-children 1 "${FUNCTIONS[@]}" > "$work/run.log" 2>&1 || { tail -40 "$work/run.log"; exit 1; }
python "$here/summarize.py" "${FUNCTIONS[@]}" | tee "$work/summary.txt"
