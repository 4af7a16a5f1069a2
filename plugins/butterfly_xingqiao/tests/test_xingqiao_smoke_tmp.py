from butterfly_xingqiao import jobs


def test_fan(xq_kernel, store_url, counter, counter_key, xq):
    kernel = xq_kernel(store_url)
    state = kernel.extensions["xingqiao"]
    created = jobs.create_job(state, "fan", job_extra={"key": counter_key, "width": 5})
    detail = xq.wait_job(kernel, created["job_id"])
    print(detail)
    print(jobs.get_tasklist(state, created["job_id"]))
    assert detail["job_status"] == "finished"
