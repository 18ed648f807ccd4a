// The default vitepress theme (self-hosted fonts, local search), plus VMX Lab's styles for the
// markdown extensions, the playground component and the landing page's course map.
import DefaultTheme from 'vitepress/theme';
import type { Theme } from 'vitepress';
import { h } from 'vue';
import CourseMap from './CourseMap.vue';
import Playground from './Playground.vue';
import './custom.css';

const theme: Theme = {
  extends: DefaultTheme,
  // The landing page's hero has a right half: the course map.
  Layout: () => h(DefaultTheme.Layout, null, { 'home-hero-image': () => h(CourseMap) }),
  enhanceApp({ app }) {
    app.component('Playground', Playground);
  },
};

export default theme;
