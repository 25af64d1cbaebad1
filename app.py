"""Segmentation Transfer Workbench: navigation only; each page lives in pages/."""

import streamlit as st

st.set_page_config(page_title="Segmentation Transfer Workbench", page_icon="🧩", layout="wide")

from pages._shared import sidebar  # noqa: E402  (set_page_config must come first)

navigation = st.navigation(
    [
        st.Page("pages/data.py", title="Data", icon="🖼️", default=True),
        st.Page("pages/model.py", title="Model & strategy", icon="🧠"),
        st.Page("pages/training.py", title="Training", icon="📈"),
        st.Page("pages/compare.py", title="Compare", icon="🔍"),
        st.Page("pages/learn.py", title="Learn", icon="🎓"),
    ]
)
sidebar()
navigation.run()
