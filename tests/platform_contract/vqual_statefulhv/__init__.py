"""The ``statefulhv`` platform: a plug-in that lives only in the tests.

It proves the platform contract (``qualification.platforms.registry``): registered through the
entry point group ``vqual.platforms`` of ``vqual_statefulhv-0.0.dist-info`` next to this
package (its check types come with it, hook ``check_types``), it qualifies the small stateful
hypervisor service ``tests/platform_contract/stateful_hv_service.py`` over HTTP, without an
edit to the product.

- :mod:`.adapter`: the endpoint (host variables ``vqual_statefulhv_url`` and
  ``vqual_statefulhv_token``) and the ``HypervisorPlatform`` adapter (urllib);
- :mod:`.observations`: the probe's IQ table and its OQ scenario;
- :mod:`.checks`: the check types whose requests name the probe;
- :mod:`.plugin`: the plug-in, every hook of ``PlatformPlugin``.
"""
