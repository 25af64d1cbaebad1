"""Segmentation Transfer Workbench: navigation only; each page lives in views/."""

import streamlit as st

st.set_page_config(page_title="Segmentation Transfer Workbench", page_icon="🧩", layout="wide")

from views._shared import sidebar  # noqa: E402  (set_page_config must come first)

navigation = st.navigation(
    [
        st.Page("views/data.py", title="Data", icon="🖼️", default=True),
        st.Page("views/model.py", title="Model & strategy", icon="🧠"),
        st.Page("views/training.py", title="Training", icon="📈"),
        st.Page("views/compare.py", title="Compare", icon="🔍"),
        st.Page("views/learn.py", title="Learn", icon="🎓"),
        st.Page("views/teacher.py", title="Teacher", icon="🧑‍🏫"),
    ]
)
sidebar(signed_in_page=navigation.url_path != "teacher", live_page=navigation.url_path == "training")
navigation.run()
